//! The Python client's own test suite (`clients/python/tests`, stdlib `unittest`) against a
//! `warren up` of its own.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::up::{Up, repo_root};

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_passes_its_tests_against_warren_up() {
    let up = Up::start(
        "python_client",
        &[
            "--workers",
            "1",
            "--slots",
            "4",
            "--allow-command",
            "echo,sh",
        ],
    )
    .await;
    let run = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-v",
            "-s",
            "clients/python/tests",
        ])
        .current_dir(repo_root())
        // The suite reads the API's URL from the environment of its own process.
        .env("WARREN_URL", &up.url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the Python tests finish in time")
        .expect("running python3 (is it installed?)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client's tests failed ({}):\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("test_the_async_client_does_the_same (") && !stderr.contains("Ran 0 "),
        "the suite ran: {stderr}"
    );

    let example = Command::new("python3")
        .args([
            "clients/python/examples/batch.py",
            "--count",
            "5",
            "--url",
            &up.url,
        ])
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), example)
        .await
        .expect("the example finishes in time")
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("5 of 5 succeeded"), "{stdout}");
    up.stop().await;
}
