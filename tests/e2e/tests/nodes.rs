//! Managed nodes over raw HTTP, playing the AWS SSM Agent: an activation made with aws-sdk-ssm,
//! anonymous `RegisterManagedInstance`, RSA-signed `RequestManagedInstanceRoleToken` and
//! `UpdateManagedInstancePublicKey`, `UpdateInstanceInformation` with the temporary credentials,
//! the refusals, and `DeregisterManagedInstance` locking the node out at once.

use ssmd_e2e::*;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a request is signed.
enum Sig<'a> {
    /// Anonymous.
    None,
    /// "SigV4 with an RSA key": node id and base64 PKCS#1 private key.
    Rsa(&'a str, &'a str),
    /// HMAC SigV4 with temporary credentials: key id, secret, session token.
    Hmac(&'a str, &'a str, &'a str),
}

/// Sends an awsJson1_1 request the way the agent does (chunked, with X-Amz-Content-Sha256 unsigned
/// for the RSA calls).
fn send(port: u16, op: &str, body: &serde_json::Value, sig: Sig<'_>, date: &str) -> Resp {
    let body = body.to_string().into_bytes();
    let mut h = http::HeaderMap::new();
    h.insert("host", format!("127.0.0.1:{port}").parse().unwrap());
    h.insert("x-amz-date", date.parse().unwrap());
    h.insert("x-amz-target", format!("AmazonSSM.{op}").parse().unwrap());
    h.insert("content-type", "application/x-amz-json-1.1".parse().unwrap());
    let mut extra = Vec::new();
    let chunked = matches!(sig, Sig::Rsa(..));
    match sig {
        Sig::None => {}
        Sig::Rsa(id, private_key) => {
            let auth = ssmd_sigv4::sign_with(id, "us-east-1", "ssm", date, "POST", "/", &h, &body, |sts| {
                ssmd_nodeauth::sign_pss(private_key, sts.as_bytes()).unwrap()
            });
            extra.push(("authorization".to_string(), auth));
            use sha2::Digest;
            extra.push(("x-amz-content-sha256".to_string(), hex::encode(sha2::Sha256::digest(&body))));
        }
        Sig::Hmac(key, secret, token) => {
            if !token.is_empty() {
                h.insert("x-amz-security-token", token.parse().unwrap());
            }
            let auth = ssmd_sigv4::sign(key, secret, "us-east-1", "ssm", date, "POST", "/", &h, &body);
            extra.push(("authorization".to_string(), auth));
        }
    }
    send_raw(port, &raw::post(&h, &extra, &body, chunked.then_some(100)))
}

/// A node's side: its keys, fingerprint and (once registered) id.
struct Node {
    keys: ssmd_nodeauth::KeyPair,
    fingerprint: String,
    id: String,
}

fn register(port: u16, id: &str, code: &str, keys: &ssmd_nodeauth::KeyPair, fingerprint: &str) -> Resp {
    let body = serde_json::json!({"ActivationCode": code, "ActivationId": id, "PublicKey": keys.public_key,
        "PublicKeyType": "Rsa", "Fingerprint": fingerprint});
    send(port, "RegisterManagedInstance", &body, Sig::None, &amz_now(0))
}

fn new_node(port: u16, activation: &(String, String)) -> Node {
    let keys = ssmd_nodeauth::generate_key_pair().unwrap();
    let fingerprint = uuid::Uuid::new_v4().to_string();
    let r = register(port, &activation.0, &activation.1, &keys, &fingerprint);
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["InstanceId"].as_str().unwrap().to_string();
    assert!(ssmd_nodeauth::is_managed_instance_id(&id), "{id}");
    Node { keys, fingerprint, id }
}

fn token(port: u16, node: &Node) -> Resp {
    let body = serde_json::json!({"Fingerprint": node.fingerprint});
    send(port, "RequestManagedInstanceRoleToken", &body, Sig::Rsa(&node.id, &node.keys.private_key), &amz_now(0))
}

struct Creds {
    key: String,
    secret: String,
    token: String,
}

fn creds(r: &Resp) -> Creds {
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    Creds {
        key: j["AccessKeyId"].as_str().unwrap().into(),
        secret: j["SecretAccessKey"].as_str().unwrap().into(),
        token: j["SessionToken"].as_str().unwrap().into(),
    }
}

fn ping(port: u16, c: &Creds, instance_id: &str) -> Resp {
    let body = serde_json::json!({"AgentName": "amazon-ssm-agent", "AgentStatus": "Active", "AgentVersion": "3.3.0.0",
        "ComputerName": "vm", "IPAddress": "127.0.0.1", "InstanceId": instance_id, "PlatformName": "Debian GNU/Linux",
        "PlatformType": "Linux", "PlatformVersion": "12", "SSMConnectionChannel": ""});
    send(port, "UpdateInstanceInformation", &body, Sig::Hmac(&c.key, &c.secret, &c.token), &amz_now(0))
}

async fn activation(server: &Server, limit: i32) -> (String, String) {
    let a = server
        .client()
        .create_activation()
        .iam_role("SSMServiceRole")
        .default_instance_name("web")
        .registration_limit(limit)
        .tags(aws_sdk_ssm::types::Tag::builder().key("env").value("test").build().unwrap())
        .send()
        .await
        .unwrap();
    (a.activation_id.unwrap(), a.activation_code.unwrap())
}

both_backends!(agent_lifecycle, |server: Server| async move {
    let port = server.port();
    let act = activation(&server, 2).await;
    let node = new_node(port, &act);
    let c = creds(&token(port, &node));
    assert!(c.key.starts_with("ASIA"), "{}", c.key);
    let node_tags = format!(
        "SELECT tag_key || '=' || tag_value FROM tags WHERE resource_type = 'ManagedInstance' AND resource_id = '{}'",
        node.id
    );
    assert_eq!(server.sql(&node_tags), "env=test", "the activation's tags are copied to the node");
    let row =
        format!("SELECT name || ',' || iam_role || ',' || account FROM managed_instances WHERE id = '{}'", node.id);
    assert_eq!(server.sql(&row), format!("web,SSMServiceRole,{ACCOUNT}"));
    let r = token(port, &node);
    let j = r.json();
    assert_eq!(j["UpdateKeyPair"], false);
    let exp = j["TokenExpirationDate"].as_f64().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((exp - now - 3600.0).abs() < 120.0, "{exp} vs {now}");

    // The agent's empty ping, then a full one.
    let empty = serde_json::json!({"AgentName": "amazon-ssm-agent", "AgentVersion": "3.3.0.0",
        "InstanceId": node.id, "PlatformType": "Linux"});
    let r = send(port, "UpdateInstanceInformation", &empty, Sig::Hmac(&c.key, &c.secret, &c.token), &amz_now(0));
    assert_eq!((r.status, r.json()), (200, serde_json::json!({})), "{}", r.body);
    let r = ping(port, &c, &node.id);
    assert_eq!(r.status, 200, "{}", r.body);
    let info = format!(
        "SELECT agent_version || ',' || platform_name || ',' || ip_address || ',' || computer_name FROM managed_instances \
         WHERE id = '{}' AND last_ping_ms IS NOT NULL",
        node.id
    );
    assert_eq!(server.sql(&info), "3.3.0.0,Debian GNU/Linux,127.0.0.1,vm");

    // A node may report only for itself; other keys may not report for it.
    let other = new_node(port, &act);
    let oc = creds(&token(port, &other));
    let r = ping(port, &oc, &node.id);
    assert_eq!((r.status, r.error_type().as_str()), (400, "AccessDeniedException"), "{}", r.body);
    let root = send(
        port,
        "UpdateInstanceInformation",
        &serde_json::json!({"InstanceId": node.id, "AgentName": "x"}),
        Sig::Hmac(ACCESS_KEY, SECRET_KEY, ""),
        &amz_now(0),
    );
    assert_eq!(root.error_type(), "AccessDeniedException", "{}", root.body);

    // The activation is used up (limit 2).
    let keys = ssmd_nodeauth::generate_key_pair().unwrap();
    let r = register(port, &act.0, &act.1, &keys, "fp");
    assert_eq!(
        (r.error_type().as_str(), r.json()["Message"].as_str()),
        ("InvalidActivation", Some("Activation has reached its registration limit")),
        "{}",
        r.body
    );
    let listed = server.client().describe_activations().send().await.unwrap();
    assert_eq!(listed.activation_list()[0].registrations_count(), Some(2));

    // Key rotation: signed with the old key; afterwards only the new key works.
    let new_keys = ssmd_nodeauth::generate_key_pair().unwrap();
    let body = serde_json::json!({"NewPublicKey": new_keys.public_key, "NewPublicKeyType": "Rsa"});
    let r =
        send(port, "UpdateManagedInstancePublicKey", &body, Sig::Rsa(&node.id, &node.keys.private_key), &amz_now(0));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(token(port, &node).error_type(), "InvalidSignatureException");
    let rotated = Node { keys: new_keys, fingerprint: node.fingerprint.clone(), id: node.id.clone() };
    let c2 = creds(&token(port, &rotated));

    // Deregistration locks the node out at once: every credential it holds, and its RSA key.
    server.client().deregister_managed_instance().instance_id(&node.id).send().await.unwrap();
    assert_eq!(server.sql(&node_tags), "");
    for c in [&c, &c2] {
        let r = ping(port, c, &node.id);
        assert_eq!((r.status, r.error_type().as_str()), (400, "UnrecognizedClientException"), "{}", r.body);
    }
    let r = token(port, &rotated);
    assert_eq!(r.error_type(), "InvalidInstanceId", "{}", r.body);
    assert_eq!(r.json()["Message"].as_str(), Some(format!("Not existing InstanceId {}", node.id).as_str()));
    let e = server.client().deregister_managed_instance().instance_id(&node.id).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidInstanceId");
    // The other node is untouched.
    assert_eq!(ping(port, &oc, &other.id).status, 200);
    // Another account cannot deregister it.
    let (k, s, _) = server.new_account();
    let e = server
        .client_with(&k, &s, "us-east-1")
        .deregister_managed_instance()
        .instance_id(&other.id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidInstanceId");
});

both_backends!(refusals, |server: Server| async move {
    let port = server.port();
    let act = activation(&server, 5).await;
    let keys = ssmd_nodeauth::generate_key_pair().unwrap();

    // Registration refusals.
    let wrong_code = format!("{}X", &act.1[..19]);
    for (id, code, want) in [
        (act.0.as_str(), wrong_code.as_str(), "InvalidActivation"),
        ("00000000-0000-0000-0000-000000000000", act.1.as_str(), "InvalidActivation"),
        ("not-a-uuid-but-36-characters-long-xx", act.1.as_str(), "InvalidActivationId"),
        (act.0.as_str(), "short", "ValidationException"),
    ] {
        let r = register(port, id, code, &keys, "fp");
        assert_eq!((r.status, r.error_type().as_str()), (400, want), "{id} {code}: {}", r.body);
    }
    let small = ssmd_nodeauth::generate_key_pair_bits(1024).unwrap();
    let padded = ssmd_nodeauth::KeyPair { public_key: format!("{}{}", small.public_key, " ".repeat(200)), ..small };
    assert_eq!(register(port, &act.0, &act.1, &padded, "fp").error_type(), "InvalidParameters");
    let mut garbage = keys.clone();
    garbage.public_key = "A".repeat(392);
    assert_eq!(register(port, &act.0, &act.1, &garbage, "fp").error_type(), "InvalidParameters");
    let r = send(
        port,
        "RegisterManagedInstance",
        &serde_json::json!({"ActivationCode": act.1, "ActivationId": act.0,
        "PublicKey": keys.public_key, "PublicKeyType": "Dsa", "Fingerprint": "fp"}),
        Sig::None,
        &amz_now(0),
    );
    assert_eq!(r.error_type(), "ValidationException");
    // None of those counted.
    let listed = server.client().describe_activations().send().await.unwrap();
    assert_eq!(listed.activation_list()[0].registrations_count(), Some(0));

    let node = new_node(port, &act);

    // Token refusals: wrong fingerprint, bad signature, stale date, unknown node.
    let wrong_fp = Node { keys: node.keys.clone(), fingerprint: "other".into(), id: node.id.clone() };
    let r = token(port, &wrong_fp);
    assert_eq!((r.status, r.error_type().as_str()), (400, "MachineFingerprintDoesNotMatch"), "{}", r.body);
    let other_keys = ssmd_nodeauth::generate_key_pair().unwrap();
    let forged = Node { keys: other_keys, fingerprint: node.fingerprint.clone(), id: node.id.clone() };
    assert_eq!(token(port, &forged).error_type(), "InvalidSignatureException");
    let body = serde_json::json!({"Fingerprint": node.fingerprint});
    let r = send(
        port,
        "RequestManagedInstanceRoleToken",
        &body,
        Sig::Rsa(&node.id, &node.keys.private_key),
        &amz_now(-20 * 60),
    );
    assert_eq!(r.error_type(), "InvalidSignatureException");
    assert!(r.body.contains("Signature expired"), "{}", r.body);
    let r = send(port, "RequestManagedInstanceRoleToken", &body, Sig::None, &amz_now(0));
    assert_eq!(r.error_type(), "MissingAuthenticationTokenException");
    let ghost =
        Node { keys: node.keys.clone(), fingerprint: node.fingerprint.clone(), id: "mi-00000000000000000".into() };
    assert_eq!(token(port, &ghost).error_type(), "InvalidInstanceId");

    // Expired temporary credentials, and a wrong session token.
    let c = creds(&token(port, &node));
    assert_eq!(ping(port, &c, &node.id).status, 200);
    let wrong = Creds { token: "x".repeat(256), ..creds(&token(port, &node)) };
    assert_eq!(ping(port, &wrong, &node.id).error_type(), "UnrecognizedClientException");
    server.sql(&format!("UPDATE access_keys SET expires_ms = 1000 WHERE access_key_id = '{}'", c.key));
    let r = ping(port, &c, &node.id);
    assert_eq!((r.status, r.error_type().as_str()), (400, "ExpiredTokenException"), "{}", r.body);
    // Issuing new credentials clears the node's expired ones.
    let _ = creds(&token(port, &node));
    let r = ping(port, &c, &node.id);
    assert_eq!(r.error_type(), "UnrecognizedClientException", "{}", r.body);

    // An expired activation.
    let exp = server.client().create_activation().iam_role("r").registration_limit(1).send().await.unwrap();
    let (id, code) = (exp.activation_id.unwrap(), exp.activation_code.unwrap());
    server.sql(&format!("UPDATE activations SET expires_ms = 1000 WHERE id = '{id}'"));
    let r = register(port, &id, &code, &keys, "fp");
    assert_eq!(
        (r.error_type().as_str(), r.json()["Message"].as_str()),
        ("InvalidActivation", Some("Activation has expired")),
        "{}",
        r.body
    );
});

both_backends!(describe_instance_information_lists_nodes_with_their_ping_status, |server: Server| async move {
    use aws_sdk_ssm::types::{
        InstanceInformationFilter, InstanceInformationFilterKey, InstanceInformationStringFilter,
    };
    let port = server.port();
    let act = activation(&server, 8).await;
    let pinged = new_node(port, &act);
    ping(port, &creds(&token(port, &pinged)), &pinged.id);
    let silent = new_node(port, &act);
    let mut later = Vec::new();
    for _ in 0..5 {
        later.push(new_node(port, &act).id);
    }
    let c = server.client();
    let all = c.describe_instance_information().send().await.unwrap();
    let list = all.instance_information_list();
    assert_eq!(list.len(), 7);
    let p = list.iter().find(|i| i.instance_id() == Some(pinged.id.as_str())).unwrap();
    assert_eq!(p.ping_status().map(|s| s.as_str()), Some("Online"));
    assert_eq!(
        (p.agent_version(), p.platform_name(), p.ip_address(), p.computer_name(), p.name(), p.iam_role()),
        (Some("3.3.0.0"), Some("Debian GNU/Linux"), Some("127.0.0.1"), Some("vm"), Some("web"), Some("SSMServiceRole"))
    );
    assert_eq!(p.platform_type().map(|t| t.as_str()), Some("Linux"));
    assert_eq!(p.resource_type().map(|t| t.as_str()), Some("ManagedInstance"));
    assert_eq!(p.activation_id(), Some(act.0.as_str()));
    assert!(p.last_ping_date_time().is_some() && p.registration_date().is_some());
    let s = list.iter().find(|i| i.instance_id() == Some(silent.id.as_str())).unwrap();
    assert_eq!(s.ping_status().map(|s| s.as_str()), Some("Inactive"), "never pinged");

    // Both filter forms, tags included.
    let online = c
        .describe_instance_information()
        .instance_information_filter_list(
            InstanceInformationFilter::builder()
                .key(InstanceInformationFilterKey::PingStatus)
                .value_set("Online")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = online.instance_information_list().iter().filter_map(|i| i.instance_id()).collect();
    assert_eq!(ids, [pinged.id.as_str()]);
    let tagged = c
        .describe_instance_information()
        .filters(InstanceInformationStringFilter::builder().key("tag:env").values("test").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.instance_information_list().len(), 7, "the activation's tags are the nodes' tags");
    let none = c
        .describe_instance_information()
        .filters(InstanceInformationStringFilter::builder().key("tag:env").values("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(none.instance_information_list().is_empty());
    let both = c
        .describe_instance_information()
        .filters(InstanceInformationStringFilter::builder().key("InstanceIds").values(&silent.id).build().unwrap())
        .instance_information_filter_list(
            InstanceInformationFilter::builder()
                .key(InstanceInformationFilterKey::PingStatus)
                .value_set("Online")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&both), "InvalidInstanceInformationFilterValue");

    // Pages of 5 cover every node once.
    let first = c.describe_instance_information().max_results(5).send().await.unwrap();
    let rest =
        c.describe_instance_information().max_results(5).next_token(first.next_token().unwrap()).send().await.unwrap();
    assert!(rest.next_token().is_none());
    let mut paged: Vec<_> = first
        .instance_information_list()
        .iter()
        .chain(rest.instance_information_list())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), 7);

    // Tags on a node: the activation's, plus those added later, which filters see.
    use aws_sdk_ssm::types::{ResourceTypeForTagging, Tag};
    c.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(&pinged.id)
        .tags(Tag::builder().key("role").value("db").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = c
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(&pinged.id)
        .send()
        .await
        .unwrap();
    let mut pairs: Vec<_> = tags.tag_list().iter().map(|t| format!("{}={}", t.key(), t.value())).collect();
    pairs.sort();
    assert_eq!(pairs, ["env=test", "role=db"]);
    let dbs = c
        .describe_instance_information()
        .filters(InstanceInformationStringFilter::builder().key("tag-key").values("role").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(dbs.instance_information_list().len(), 1);

    // A deregistered node is no longer listed; other accounts see none of these.
    c.deregister_managed_instance().instance_id(&silent.id).send().await.unwrap();
    assert_eq!(c.describe_instance_information().send().await.unwrap().instance_information_list().len(), 6);
    let (k, secret, _) = server.new_account();
    let other = server.client_with(&k, &secret, "us-east-1");
    assert!(other.describe_instance_information().send().await.unwrap().instance_information_list().is_empty());
    let _ = later;
});
