//! What the node reports about itself in `UpdateInstanceInformation`: platform name and version
//! (`NAME` and `VERSION_ID` of `/etc/os-release`), host name, and the local address used to reach
//! the service.

use serde_json::{Value, json};

/// The node's platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `PlatformName`, e.g. `Debian GNU/Linux`.
    pub name: String,
    /// `PlatformVersion`, e.g. `12`.
    pub version: String,
    /// The host name.
    pub hostname: String,
}

/// Reads `key` from os-release text (values may be quoted).
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        (k == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// The host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; gethostname NUL-terminates within it.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Detects the platform.
pub fn detect() -> Platform {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    Platform {
        name: os_release_value(&text, "NAME").unwrap_or_else(|| "Linux".into()),
        version: os_release_value(&text, "VERSION_ID").unwrap_or_default(),
        hostname: hostname(),
    }
}

/// The local IP address of the route to `host:port` (no packet is sent); empty if unknown.
pub fn local_ip(host: &str, port: u16) -> String {
    let probe = || -> std::io::Result<String> {
        let target = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let s = std::net::UdpSocket::bind(bind)?;
        s.connect(target)?;
        Ok(s.local_addr()?.ip().to_string())
    };
    probe().unwrap_or_default()
}

/// The `UpdateInstanceInformation` body.
pub fn ping_body(instance_id: &str, p: &Platform, computer_name: &str, ip: &str) -> Value {
    json!({
        "InstanceId": instance_id,
        "AgentName": crate::AGENT_NAME,
        "AgentVersion": crate::AGENT_VERSION,
        "AgentStatus": "Active",
        "PlatformType": "Linux",
        "PlatformName": p.name,
        "PlatformVersion": p.version,
        "IPAddress": ip,
        "ComputerName": computer_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release() {
        let t =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(os_release_value(t, "NAME").as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(os_release_value(t, "VERSION_ID").as_deref(), Some("12"));
        assert_eq!(os_release_value(t, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_value(t, "MISSING"), None);
        assert!(!detect().name.is_empty());
        assert!(!hostname().is_empty());
        assert_eq!(local_ip("127.0.0.1", 9), "127.0.0.1");
    }
}
