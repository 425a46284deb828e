//! The service side of the agent against a fake service that goes away and comes back: a reply
//! made while nothing listens is spooled and sent — with the same ReplyId — once the service is
//! back, by a new agent process (a restart); 5xx answers are retried too. The session renews
//! refused credentials once and retries the call, renews old ones before using them, and
//! rotates its key pair when the token answer asks for it; a node whose clock is off signs with
//! the service's time once the service has told it.

mod common;

use common::*;
use serde_json::json;
use ssmd_agent::outbox::Outbox;
use ssmd_agent::session::Session;
use ssmd_agent::spool::Spool;
use ssmd_agent::state::{self, Registration, StateDir};
use ssmd_agent::stop::Stop;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A state directory registered as `INSTANCE_ID` with `ssm`, for `url`.
fn registered(ssm: &Ssm, url: &str) -> StateDir {
    let st = StateDir::open(&temp_dir("state")).unwrap();
    let keys = ssmd_nodeauth::generate_key_pair().unwrap();
    st.write(state::PRIVATE_KEY, keys.private_key.as_bytes()).unwrap();
    st.write(state::PUBLIC_KEY, keys.public_key.as_bytes()).unwrap();
    st.write(state::FINGERPRINT, b"fp-1").unwrap();
    let reg =
        Registration { instance_id: INSTANCE_ID.into(), region: "us-east-1".into(), endpoint: url.into(), name: None };
    st.write(state::REGISTRATION, &serde_json::to_vec(&reg).unwrap()).unwrap();
    *ssm.node.lock().unwrap() = Some((INSTANCE_ID.into(), keys.public_key, "fp-1".into()));
    st
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn outbox(st: &StateDir) -> Arc<Outbox> {
    let session = Arc::new(Session::open(st.clone()).unwrap());
    let spool = Spool::open(&st.dir(state::REPLIES).unwrap()).unwrap();
    Arc::new(Outbox::new(session, spool))
}

#[test]
fn replies_survive_an_outage_and_a_restart() {
    let ssm = Ssm::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let st = registered(&ssm, &url);

    // Nothing listens: the in-progress reply and the final reply are both spooled.
    let first = outbox(&st);
    first.send_now("aws.ssm.c1.mi", &json!({"documentStatus": "InProgress"}).to_string());
    first.send_final("aws.ssm.c1.mi", &json!({"documentStatus": "Success"}).to_string());
    first.send_final("aws.ssm.c2.mi", &json!({"documentStatus": "Failed"}).to_string());
    let f = first.flush(Some(Duration::from_secs(2))).unwrap();
    assert!(f.failed && f.sent == 0 && f.remaining == 2, "{f:?}");
    let spooled: Vec<_> = first.spool().entries().into_iter().map(|(_, r)| r).collect();
    assert_eq!(spooled.len(), 2, "the in-progress reply is superseded by the final one");
    assert!(spooled.iter().all(|r| r.is_final));
    drop(first);

    // The service comes back on the same port, answering 503 to SendReply at first; a new
    // agent (a restart) sends the spooled replies once it can.
    ssm.replies_down.store(true, Ordering::SeqCst);
    let server = Server::start_on(port, ssm.handler());
    let second = outbox(&st);
    let stop = Arc::new(Stop::new());
    let (o, s) = (second.clone(), stop.clone());
    let resender = std::thread::spawn(move || o.run_resender(&s));
    second.nudge();
    server.wait_for(Duration::from_secs(10), |r| r.op() == "SendReply").expect("a retry");
    assert_eq!(second.spool().len(), 2, "503s keep the replies");
    ssm.replies_down.store(false, Ordering::SeqCst);
    let want: Vec<String> = spooled.iter().map(|r| r.reply_id.clone()).collect();
    for id in &want {
        server
            .wait_for(Duration::from_secs(60), |r| {
                r.op() == "SendReply" && r.json()["ReplyId"] == id.as_str() && !ssm.replies_down.load(Ordering::SeqCst)
            })
            .unwrap_or_else(|| panic!("reply {id} never delivered"));
    }
    let ok =
        server.wait_for(Duration::from_secs(5), |r| r.op() == "SendReply" && r.json()["MessageId"] == "aws.ssm.c1.mi");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(ok.unwrap().json()["Payload"].as_str().unwrap()).unwrap(),
        json!({"documentStatus": "Success"})
    );
    for _ in 0..50 {
        if second.spool().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(second.spool().is_empty());
    stop.request();
    resender.join().unwrap();
    assert!(ssm.bad_signatures.lock().unwrap().is_empty(), "{:?}", ssm.bad_signatures.lock().unwrap());
    std::fs::remove_dir_all(st.root()).unwrap();
}

#[test]
fn credentials_are_renewed_when_refused_or_old() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let st = registered(&ssm, &server.url());
    let session = Session::open(st.clone()).unwrap();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({"InstanceId": INSTANCE_ID})).unwrap();
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), 1);
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), 1, "kept while fresh");

    // The service forgets them (e.g. it restarted with a new database): renewed once, retried.
    ssm.creds.lock().unwrap().clear();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), 2);
    let stored: serde_json::Value = serde_json::from_slice(&st.read(state::CREDENTIALS).unwrap().unwrap()).unwrap();
    assert_eq!(stored["AccessKeyId"], "ASIATEST1");

    // Short-lived credentials are renewed before use; a new session reuses stored ones.
    ssm.token_secs.store(30, Ordering::SeqCst);
    session.credentials(true).unwrap();
    let before = server.calls("RequestManagedInstanceRoleToken").len();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), before + 1, "30 s left is too little");
    ssm.token_secs.store(3600, Ordering::SeqCst);
    session.credentials(true).unwrap();
    let n = server.calls("RequestManagedInstanceRoleToken").len();
    let again = Session::open(st.clone()).unwrap();
    again.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), n);

    // A refusal that is not about credentials is not retried.
    *ssm.node.lock().unwrap() = None;
    ssm.creds.lock().unwrap().clear();
    let e = again.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap_err();
    assert_eq!(e.kind(), Some("InvalidSignatureException"), "{e}");
    assert!(ssm.bad_signatures.lock().unwrap().iter().all(|b| b.starts_with("token: no node")));
    std::fs::remove_dir_all(st.root()).unwrap();
}

#[test]
fn the_key_pair_is_rotated_when_the_service_asks() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let st = registered(&ssm, &server.url());
    let old_private = st.read_text(state::PRIVATE_KEY).unwrap().unwrap();
    ssm.rotate_next.store(true, Ordering::SeqCst);
    let session = Session::open(st.clone()).unwrap();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.calls("UpdateManagedInstancePublicKey").len(), 1);
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), 2, "a new token with the new key");
    let new_private = st.read_text(state::PRIVATE_KEY).unwrap().unwrap();
    assert_ne!(new_private, old_private);
    let new_public = st.read_text(state::PUBLIC_KEY).unwrap().unwrap();
    assert_eq!(ssm.node.lock().unwrap().as_ref().unwrap().1, new_public, "the service has the stored key");
    assert!(st.read("private_key.next").unwrap().is_none() && st.read("public_key.next").unwrap().is_none());
    // Later sessions sign with the new key.
    st.remove(state::CREDENTIALS).unwrap();
    Session::open(st.clone()).unwrap().call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert!(ssm.bad_signatures.lock().unwrap().is_empty(), "{:?}", ssm.bad_signatures.lock().unwrap());
    std::fs::remove_dir_all(st.root()).unwrap();
}

#[test]
fn a_wrong_clock_is_corrected_from_the_service_date() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    // The service's clock is an hour ahead of this node's.
    ssm.clock_offset.store(3600, Ordering::SeqCst);
    server.set_clock_offset(3600);
    let st = registered(&ssm, &server.url());
    let session = Session::open(st.clone()).unwrap();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    let skew = session.client().skew_ms();
    assert!((3_590_000..=3_610_000).contains(&skew), "{skew}");
    let tokens = server.calls("RequestManagedInstanceRoleToken");
    assert_eq!(tokens.len(), 2, "refused once, then signed with the service's time");
    let calls = server.requests().len();
    session.call("AmazonSSM.UpdateInstanceInformation", &json!({})).unwrap();
    assert_eq!(server.requests().len(), calls + 1, "no more refusals");
    std::fs::remove_dir_all(st.root()).unwrap();
}
