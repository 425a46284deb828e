//! Parameter Store under load (issue 14): GetParameter of a String and of a SecureString (with
//! decryption: an AES-256-GCM data-key unwrap and value open per read), and GetParametersByPath
//! pages over a hierarchy of 10,000 parameters, at 1 and 32 connections, on SQLite and PostgreSQL.

use crate::{Opts, fresh_pg, median_run, round_trip, signed_request, spawn, ssmd_cmd};
use anyhow::{Result, bail};
use tokio::net::TcpStream;

fn put_all(port: u16, count: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut buf = Vec::new();
        let mut bodies = vec![
            serde_json::json!({"Name": "/bench/one", "Value": "value-one", "Type": "String"}).to_string(),
            serde_json::json!({"Name": "/bench/secret", "Value": "s3cret-value", "Type": "SecureString"}).to_string(),
        ];
        for i in 0..count {
            bodies.push(
                serde_json::json!({"Name": format!("/bench/tree/g{}/p{i:05}", i % 100), "Value": format!("v{i}"),
                    "Type": "String"})
                .to_string(),
            );
        }
        for body in bodies {
            let status = round_trip(&mut s, &signed_request(port, "PutParameter", &body), &mut buf).await?;
            if status != 200 {
                bail!("PutParameter failed: {}", String::from_utf8_lossy(&buf));
            }
        }
        Ok(())
    })
}

/// `ssmd-bench parameters [--count N] [--seconds N] [--rounds N] [--ssmd PATH] [--pg URL | --no-pg]`.
pub fn run(o: &Opts, count: usize) -> Result<()> {
    println!("| server | request | conns | req/s (median) | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    let mut backends: Vec<(&str, Option<String>)> = vec![("ssmd sqlite", None)];
    if let Some(base) = &o.pg {
        backends.push(("ssmd postgres", Some(fresh_pg(base)?)));
    }
    for (label, db) in backends {
        let dir =
            std::env::temp_dir().join(format!("ssmd-bench-params-{}-{}", std::process::id(), label.replace(' ', "-")));
        let _ = std::fs::remove_dir_all(&dir);
        let server = spawn(ssmd_cmd(o, &dir, db.as_deref()))?;
        let t = std::time::Instant::now();
        put_all(server.port, count)?;
        println!(
            "| {label} | PutParameter ×{} (one connection, sequential) | 1 | {:.0} | | | |",
            count + 2,
            (count + 2) as f64 / t.elapsed().as_secs_f64()
        );
        for (what, target, body) in [
            ("GetParameter String", "GetParameter", r#"{"Name":"/bench/one"}"#),
            (
                "GetParameter SecureString decrypted",
                "GetParameter",
                r#"{"Name":"/bench/secret","WithDecryption":true}"#,
            ),
            (
                "GetParametersByPath recursive, 10 per page",
                "GetParametersByPath",
                r#"{"Path":"/bench/tree","Recursive":true,"MaxResults":10}"#,
            ),
            ("GetParametersByPath one level", "GetParametersByPath", r#"{"Path":"/bench/tree/g42","MaxResults":10}"#),
        ] {
            for conns in [1usize, 32] {
                let r = median_run(server.port, target, body, conns, o)?;
                println!(
                    "| {label} | {what} | {conns} | {:.0} | {:.3} | {:.3} | {} |",
                    r.rps, r.p50_ms, r.p99_ms, r.errors
                );
            }
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        if let (Some(base), Some(_)) = (&o.pg, &db) {
            crate::drop_pg(base);
        }
    }
    Ok(())
}
