//! The command line as a user meets it: every `sh` block of the README's "Command line" section
//! runs, as written and in order, against `clientele serve` on the embedded default (SQLite in
//! a fresh working directory), so the README cannot drift from the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

#[path = "common/totp.rs"]
mod totp;

const README: &str = include_str!("../README.md");

/// The ```sh blocks between `## Command line` and the next `## ` heading.
fn cli_blocks() -> Vec<String> {
    let start = README
        .find("\n## Command line\n")
        .expect("README has a Command line section");
    let section = &README[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut rest = &section[..end];
    while let Some(i) = rest.find("```sh\n") {
        let body = &rest[i + 6..];
        let close = body.find("\n```").expect("closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 4..];
    }
    blocks
}

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clientele serve` with no configuration in `dir` (metrics and console off, a free port).
fn serve(dir: &Path) -> Served {
    serve_with(dir, &[])
}

/// [`serve`] with configuration overrides (`CLIENTELE_*` variables).
fn serve_with(dir: &Path, env: &[(&str, &str)]) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_clientele"))
        .current_dir(dir)
        .env_remove("CLIENTELE_CONFIG")
        .env("CLIENTELE_SERVER__METRICS_LISTEN", "")
        .env("CLIENTELE_SERVER__CONSOLE_LISTEN", "")
        .envs(env.iter().copied())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return served;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("clientele serve did not listen on {port}");
}

#[test]
fn every_readme_cli_example_runs_as_written_on_the_embedded_default() {
    let blocks = cli_blocks();
    assert!(blocks.len() >= 3, "README CLI blocks: {blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_clientele")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut transcript = String::new();
    for block in &blocks {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            let out = Command::new("sh")
                .args(["-e", "-c", line])
                .current_dir(dir.path())
                .env("PATH", &path)
                .env("CLIENTELE_SERVER", &server.url)
                .env_remove("CLIENTELE_TOKEN")
                .env_remove("CLIENTELE_PASSWORD")
                .env_remove("CLIENTELE_OUTPUT")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            transcript.push_str(&format!("$ {line}\n{stdout}"));
            assert!(
                out.status.success(),
                "README example failed: {line}\nstderr: {}\ntranscript so far:\n{transcript}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The examples did what they say.
    for expected in [
        "generated password: ",
        "wile\tWile Coyote\twile@acme.example\tacme\tVALID\tlocal",
        "\"first_name\": \"Wile\"",
        "acme-west\n",
        "UserLanguage\ten\n",
        "support\tro\t",
        "SUCCESS\tlocal\tacme",
        "\"total_size\": 2",
        "unlocked",
        "wile.e\t",
        "INVALID",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected:?} not in:\n{transcript}"
        );
    }
}

#[test]
fn errors_are_words_and_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_clientele"))
            .args(["--server", &server.url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["user", "get", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{out:?}"
    );
    let out = run(&[
        "user",
        "create",
        "--login",
        "x",
        "--first-name",
        "X",
        "--last-name",
        "Y",
        "--email",
        "x@example.com",
        "--customer-id",
        "missing",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("create it first"),
        "{out:?}"
    );
    let out = run(&["--output", "json", "group", "list"]);
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["groups"].is_array(), "{doc}");
}

/// The second factor from the command line: enrol, confirm with a token computed by the
/// test's own TOTP, `auth check` asking for the token (SECOND_FACTOR_REQUIRED without one, the
/// token read from stdin after the prompt), remove.
#[test]
fn two_factor_enrol_confirm_check_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(
        dir.path(),
        &[("CLIENTELE_AUTH__TWO_FACTOR__ENABLED", "true")],
    );
    let run = |args: &[&str], env: &[(&str, &str)], stdin: &str| -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clientele"))
            .args(["--server", &server.url])
            .args(args)
            .env_remove("CLIENTELE_OTP")
            .env_remove("CLIENTELE_PASSWORD")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = |out: Output| {
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    const PW: &str = "Two-Factor-Pw-1";
    let pw = [("CLIENTELE_PASSWORD", PW)];
    ok(run(
        &[
            "customer",
            "create",
            "--customer-id",
            "acme",
            "--name",
            "ACME",
        ],
        &[],
        "",
    ));
    ok(run(
        &[
            "user",
            "create",
            "--login",
            "road",
            "--first-name",
            "Road",
            "--last-name",
            "Runner",
            "--email",
            "road@acme.example",
            "--customer-id",
            "acme",
        ],
        &[],
        "",
    ));
    ok(run(&["user", "set-password", "road"], &pw, ""));
    let enrolled: serde_json::Value = serde_json::from_str(&ok(run(
        &["--output", "json", "auth", "totp", "enroll", "road"],
        &[],
        "",
    )))
    .unwrap();
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolled["otpauth_uri"]
            .as_str()
            .unwrap()
            .contains(&format!("secret={secret}")),
        "{enrolled}"
    );
    // Confirm with the previous window's token (allow_previous_token), so that the current
    // window's token is still unused for the login below; keep clear of a window's end.
    let now = loop {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if t % 30 < 24 {
            break t;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let previous = totp::token(&secret, now - 30);
    let wrong = run(
        &["auth", "totp", "confirm", "road"],
        &[("CLIENTELE_OTP", "000000")],
        "",
    );
    if previous != "000000" {
        assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
        assert!(
            String::from_utf8_lossy(&wrong.stderr).contains("otp"),
            "{wrong:?}"
        );
    }
    ok(run(
        &["auth", "totp", "confirm", "road"],
        &[("CLIENTELE_OTP", previous.as_str())],
        "",
    ));
    // Right password, no token: SECOND_FACTOR_REQUIRED, exit 1.
    let out = run(&["auth", "check", "road"], &pw, "\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SECOND_FACTOR_REQUIRED"),
        "{out:?}"
    );
    // The token from stdin after the prompt.
    let current = totp::token(&secret, now);
    let out = run(&["auth", "check", "road"], &pw, &format!("{current}\n"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one-time password"),
        "{out:?}"
    );
    assert!(ok(out).starts_with("SUCCESS\tlocal\tacme"));
    // Used once: the same token again is refused.
    let out = run(
        &["auth", "check", "road"],
        &[
            ("CLIENTELE_PASSWORD", PW),
            ("CLIENTELE_OTP", current.as_str()),
        ],
        "",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("INVALID_CREDENTIALS"),
        "{out:?}"
    );
    ok(run(&["auth", "unlock", "road"], &[], ""));
    ok(run(&["auth", "totp", "remove", "road"], &[], ""));
    assert!(ok(run(&["auth", "check", "road"], &pw, "")).starts_with("SUCCESS"));
}
