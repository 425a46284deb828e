//! End-to-end tests of `ssmd_script::run` against the local `python3`: results, failures,
//! output capture and limits, timeouts and the killing of the whole process group.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ssmd_script::{MAX_STDOUT_BYTES, ScriptOutcome, ScriptRequest, run};

fn request(script: &str) -> ScriptRequest {
    ScriptRequest {
        runtime: "python3.11".to_owned(),
        handler: "script_handler".to_owned(),
        script: script.to_owned(),
        events: json!({}),
        context: json!({}),
        timeout: Duration::from_secs(10),
        python: PathBuf::from("python3"),
    }
}

async fn success(req: ScriptRequest) -> (Value, String) {
    match run(req).await {
        ScriptOutcome::Success { payload, stdout } => (payload, stdout),
        other => panic!("expected success, got {other:?}"),
    }
}

async fn failure(req: ScriptRequest) -> String {
    match run(req).await {
        ScriptOutcome::Failed { message, .. } => message,
        other => panic!("expected failure, got {other:?}"),
    }
}

/// A scratch directory for a test, removed at the end.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("ssmd-script-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `path` holds a pid.
async fn read_pid(path: &Path) -> libc::pid_t {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the process is gone: no such process, or a zombie nobody reaped yet (in a container
/// pid 1 may not reap orphans).
fn gone(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

async fn assert_gone_soon(pid: libc::pid_t) {
    let start = Instant::now();
    while !gone(pid) {
        assert!(start.elapsed() < Duration::from_secs(1), "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn returns_json_values() {
    let (payload, _) =
        success(request("def script_handler(events, context):\n    return {'a': [1, 2.5, 'x'], 'b': None}\n")).await;
    assert_eq!(payload, json!({"a": [1, 2.5, "x"], "b": null}));
    let (payload, _) = success(request("def script_handler(events, context):\n    return [1, True, 'é']\n")).await;
    assert_eq!(payload, json!([1, true, "é"]));
    let (payload, _) = success(request("def script_handler(events, context):\n    return 42\n")).await;
    assert_eq!(payload, json!(42));
    let (payload, _) = success(request("def script_handler(events, context):\n    pass\n")).await;
    assert_eq!(payload, Value::Null);
}

#[tokio::test]
async fn events_and_context_arrive() {
    let mut req = request("def script_handler(events, context):\n    return {'events': events, 'context': context}\n");
    req.events = json!({"InstanceId": "i-123", "Count": 3});
    req.context = json!({"automation:EXECUTION_ID": "exec-1", "global:ACCOUNT_ID": "123456789012"});
    let (payload, _) = success(req).await;
    assert_eq!(payload["events"], json!({"InstanceId": "i-123", "Count": 3}));
    assert_eq!(payload["context"]["automation:EXECUTION_ID"], "exec-1");
    assert_eq!(payload["context"]["global:ACCOUNT_ID"], "123456789012");

    let mut req = request("def script_handler(events, context):\n    return events\n");
    req.events = Value::Null;
    assert_eq!(success(req).await.0, json!({}));
}

#[tokio::test]
async fn dotted_handler_uses_the_function_name() {
    let mut req = request("def func(events, context):\n    return 'called'\n");
    req.handler = "module.func".to_owned();
    assert_eq!(success(req).await.0, json!("called"));
}

#[tokio::test]
async fn print_output_is_captured_apart_from_the_payload() {
    let script = "import sys\nprint('hello')\ndef script_handler(events, context):\n    print('from handler', 1)\n    \
                  sys.stdout.write('no newline')\n    return {'ok': True}\n";
    let (payload, stdout) = success(request(script)).await;
    assert_eq!(payload, json!({"ok": true}));
    assert_eq!(stdout, "hello\nfrom handler 1\nno newline");
}

#[tokio::test]
async fn exception_fails_with_traceback() {
    let script = "def helper(x):\n    raise ValueError('bad value %d' % x)\n\ndef script_handler(events, context):\n    \
                  print('before')\n    return helper(7)\n";
    let req = request(script);
    match run(req).await {
        ScriptOutcome::Failed { message, stdout } => {
            assert!(message.starts_with("ValueError: bad value 7"), "{message}");
            assert!(message.contains("Traceback (most recent call last)"), "{message}");
            assert!(message.contains("line 2, in helper"), "{message}");
            assert!(message.contains("line 6, in script_handler"), "{message}");
            assert!(message.contains("raise ValueError('bad value %d' % x)"), "{message}");
            assert!(!message.contains("bootstrap"), "{message}");
            assert_eq!(stdout, "before\n");
        }
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn module_level_exception_fails() {
    let message = failure(request("import no_such_module_xyz\ndef script_handler(e, c):\n    return 1\n")).await;
    assert!(message.contains("failed while loading"), "{message}");
    assert!(message.contains("no_such_module_xyz"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[tokio::test]
async fn syntax_error_fails() {
    let message = failure(request("def script_handler(events, context)\n    return 1\n")).await;
    assert!(message.contains("does not compile"), "{message}");
    assert!(message.contains("SyntaxError"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[tokio::test]
async fn missing_handler_fails_naming_it() {
    let mut req = request("def other(events, context):\n    return 1\n");
    req.handler = "script_handler".to_owned();
    let message = failure(req).await;
    assert!(message.contains("no handler named 'script_handler'"), "{message}");
    assert!(message.contains("other"), "{message}");

    let message = failure(request("script_handler = 3\n")).await;
    assert!(message.contains("'script_handler' is a int, not a function"), "{message}");
}

#[tokio::test]
async fn non_serialisable_return_fails() {
    let message = failure(request("def script_handler(events, context):\n    return {1, 2}\n")).await;
    assert!(message.contains("not JSON-serialisable"), "{message}");
    assert!(message.contains("set"), "{message}");
    let message = failure(request("class A:\n    pass\ndef script_handler(events, context):\n    return A()\n")).await;
    assert!(message.contains("not JSON-serialisable"), "{message}");
    let message = failure(request("def script_handler(events, context):\n    return float('nan')\n")).await;
    assert!(message.contains("not JSON-serialisable"), "{message}");
}

#[tokio::test]
async fn sys_exit_without_result_fails() {
    let message = failure(request("import sys\ndef script_handler(events, context):\n    sys.exit(0)\n")).await;
    assert!(message.contains("handler did not return"), "{message}");
    let message = failure(request("import sys\ndef script_handler(events, context):\n    sys.exit(3)\n")).await;
    assert!(message.contains("sys.exit(3)"), "{message}");
}

#[tokio::test]
async fn interpreter_death_reports_signal_and_stderr() {
    let script = "import os, sys\ndef script_handler(events, context):\n    sys.stderr.write('dying now\\n')\n    \
                  os.abort()\n";
    let message = failure(request(script)).await;
    assert!(message.contains("killed by signal 6 (SIGABRT)"), "{message}");
    assert!(message.contains("dying now"), "{message}");

    let message = failure(request("import os\ndef script_handler(events, context):\n    os._exit(0)\n")).await;
    assert!(message.contains("exited with status 0 without reporting a result"), "{message}");
}

#[tokio::test]
async fn timeout_kills_the_script() {
    let mut req =
        request("import time\ndef script_handler(events, context):\n    print('started')\n    time.sleep(30)\n");
    req.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let outcome = run(req).await;
    let elapsed = start.elapsed();
    assert_eq!(outcome, ScriptOutcome::TimedOut { stdout: "started\n".to_owned() });
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
}

#[tokio::test]
async fn timeout_kills_the_scripts_children() {
    let dir = TestDir::new("grandchild");
    let pid_file = dir.0.join("pid");
    let mut req = request(
        "import subprocess, time\ndef script_handler(events, context):\n    \
         child = subprocess.Popen(['sleep', '300'])\n    \
         with open(events['pid_file'], 'w') as f:\n        f.write(str(child.pid))\n    time.sleep(30)\n",
    );
    req.events = json!({"pid_file": pid_file});
    req.timeout = Duration::from_secs(1);
    let outcome = run(req).await;
    assert!(matches!(outcome, ScriptOutcome::TimedOut { .. }), "{outcome:?}");
    assert_gone_soon(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn finishing_kills_the_scripts_children_without_waiting_for_them() {
    let dir = TestDir::new("leftover");
    let pid_file = dir.0.join("pid");
    let mut req = request(
        "import subprocess\ndef script_handler(events, context):\n    \
         child = subprocess.Popen('sleep 300', shell=True)\n    \
         with open(events['pid_file'], 'w') as f:\n        f.write(str(child.pid))\n    return 'done'\n",
    );
    req.events = json!({"pid_file": pid_file});
    let start = Instant::now();
    let (payload, _) = success(req).await;
    assert_eq!(payload, json!("done"));
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    assert_gone_soon(read_pid(&pid_file).await).await;
}

#[tokio::test]
async fn dropping_the_run_kills_the_process_group() {
    let dir = TestDir::new("cancel");
    let pid_file = dir.0.join("pid");
    let child_pid_file = dir.0.join("child_pid");
    let mut req = request(
        "import os, subprocess, time\ndef script_handler(events, context):\n    \
         child = subprocess.Popen(['sleep', '300'])\n    \
         with open(events['child_pid_file'], 'w') as f:\n        f.write(str(child.pid))\n    \
         with open(events['pid_file'], 'w') as f:\n        f.write(str(os.getpid()))\n    time.sleep(30)\n",
    );
    req.events = json!({"pid_file": pid_file, "child_pid_file": child_pid_file});
    let task = tokio::spawn(run(req));
    let pid = read_pid(&pid_file).await;
    let child_pid = read_pid(&child_pid_file).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_gone_soon(pid).await;
    assert_gone_soon(child_pid).await;
}

#[tokio::test]
async fn huge_stdout_is_truncated() {
    let script = "import sys\ndef script_handler(events, context):\n    for _ in range(50):\n        \
                  sys.stdout.write('x' * 100000)\n    return 'fine'\n";
    let (payload, stdout) = success(request(script)).await;
    assert_eq!(payload, json!("fine"));
    assert_eq!(stdout.len(), MAX_STDOUT_BYTES);
    assert!(stdout.bytes().all(|b| b == b'x'));
}

#[tokio::test]
async fn payload_over_100_kb_fails() {
    let message = failure(request("def script_handler(events, context):\n    return 'x' * 200000\n")).await;
    assert!(message.contains("too large"), "{message}");
    assert!(message.contains("100 KB"), "{message}");
    // Just under the limit is fine.
    let (payload, _) = success(request("def script_handler(events, context):\n    return 'x' * 100000\n")).await;
    assert_eq!(payload.as_str().map(str::len), Some(100_000));
}

#[tokio::test]
async fn powershell_is_unsupported() {
    let mut req = request("Write-Output 'hi'");
    req.runtime = "PowerShell 7.4".to_owned();
    match run(req).await {
        ScriptOutcome::Unsupported { message } => {
            assert!(message.contains("PowerShell 7.4"), "{message}");
            assert!(message.contains("python3.11"), "{message}");
        }
        other => panic!("expected unsupported, got {other:?}"),
    }
    let mut req = request("print 'hi'");
    req.runtime = "python2.7".to_owned();
    assert!(matches!(run(req).await, ScriptOutcome::Unsupported { .. }));
}

#[tokio::test]
async fn missing_interpreter_fails_naming_it() {
    let mut req = request("def script_handler(events, context):\n    return 1\n");
    req.python = PathBuf::from("/nonexistent/bin/python3");
    let message = failure(req).await;
    assert!(message.contains("/nonexistent/bin/python3"), "{message}");
    assert!(message.contains("not found"), "{message}");
}
