//! `ssmd-agent register`: hybrid activation, as the AWS agent's `-register`. Generates an
//! RSA-2048 key pair, keeps (or makes) the machine's fingerprint, calls the anonymous
//! `AmazonSSM.RegisterManagedInstance` and stores the identity in the state directory. An
//! existing registration is kept unless `force`; a forced re-registration also clears what
//! belonged to the old identity (credentials, spooled replies, inbox, seen ids).

use crate::http::{Auth, Client, Endpoint};
use crate::state::{self, Registration, StateDir};
use serde_json::json;
use std::path::PathBuf;

/// What `register` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Service endpoint URL.
    pub endpoint: String,
    /// Activation code.
    pub code: String,
    /// Activation id.
    pub id: String,
    /// Region.
    pub region: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Computer name to report instead of the host name.
    pub name: Option<String>,
    /// Replace an existing registration.
    pub force: bool,
}

/// Registers the node; returns its instance id.
pub fn register(o: &Options) -> Result<String, String> {
    Endpoint::parse(&o.endpoint)?;
    if o.region.trim().is_empty() {
        return Err("the region is empty".into());
    }
    if o.code.trim().is_empty() || o.id.trim().is_empty() {
        return Err("the activation code and id must not be empty".into());
    }
    let st = StateDir::open(&o.state_dir).map_err(|e| format!("cannot open {}: {e}", o.state_dir.display()))?;
    if let Some(existing) = st.registration()?
        && !o.force
    {
        return Err(format!(
            "this node is already registered as {} with {} (state directory {}); pass --force to register again",
            existing.instance_id,
            existing.endpoint,
            st.root().display()
        ));
    }
    let fingerprint = match st.read_text(state::FINGERPRINT).map_err(|e| e.to_string())? {
        Some(f) if !f.is_empty() => f,
        _ => {
            let f = crate::ids::uuid_v4();
            st.write(state::FINGERPRINT, f.as_bytes()).map_err(|e| format!("cannot store the fingerprint: {e}"))?;
            f
        }
    };
    let keys = ssmd_nodeauth::generate_key_pair().map_err(|e| format!("cannot generate a key pair: {e}"))?;
    let client = Client::new(&o.endpoint, &o.region)?;
    let body = json!({
        "ActivationCode": o.code.trim(),
        "ActivationId": o.id.trim(),
        "Fingerprint": fingerprint,
        "PublicKey": keys.public_key,
        "PublicKeyType": ssmd_nodeauth::PUBLIC_KEY_TYPE,
    });
    let answer =
        client.call("AmazonSSM.RegisterManagedInstance", &body, Auth::Anonymous, None).map_err(|e| match e {
            crate::http::CallError::Transport(m) => format!("cannot reach {}: {m}", o.endpoint),
            other => format!("registration refused: {other}"),
        })?;
    let instance_id = answer["InstanceId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the service answered without an InstanceId: {answer}"))?
        .to_string();
    let io = |what: &str, e: std::io::Error| format!("registered as {instance_id}, but cannot store {what}: {e}");
    if o.force {
        for old in [
            state::CREDENTIALS,
            state::SEEN,
            state::REPLIES,
            state::INBOX,
            state::WORK,
            "private_key.next",
            "public_key.next",
        ] {
            st.remove(old).map_err(|e| io(old, e))?;
        }
    }
    st.write(state::PRIVATE_KEY, keys.private_key.as_bytes()).map_err(|e| io("the private key", e))?;
    st.write(state::PUBLIC_KEY, keys.public_key.as_bytes()).map_err(|e| io("the public key", e))?;
    let reg = Registration {
        instance_id: instance_id.clone(),
        region: o.region.trim().to_string(),
        endpoint: o.endpoint.trim().to_string(),
        name: o.name.clone().filter(|n| !n.is_empty()),
    };
    let data = serde_json::to_vec_pretty(&reg).expect("serializable");
    st.write(state::REGISTRATION, &data).map_err(|e| io("the registration", e))?;
    Ok(instance_id)
}
