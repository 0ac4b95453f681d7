//! An operator's first hour with the binary: configuration typos stop start-up, a SQLite file is
//! created where the URL points, errors are printed once, the help text says what to do, and
//! the logs say what happened (without colour codes in a redirected file).

use std::{
    collections::HashMap,
    io::Write,
    process::{Command, Stdio},
};

use gridwhistle::config::{Settings, SettingsSources};

use crate::helpers::{Backend, backends, fresh_database, test_env};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary to completion with exactly these variables (plus PATH), nothing inherited
/// that could change its configuration.
fn cli(args: &[&str], vars: &HashMap<String, String>, stdin: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridwhistle"));
    command.args(args).env_clear().envs(vars);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("binary runs");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("binary finishes");
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Starts `serve` with these arguments, waits until it answers, stops it with SIGTERM and
/// returns what it wrote on standard output (the log, redirected to a pipe as in a file).
async fn serve_and_stop(args: &[&str], vars: &HashMap<String, String>) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut vars = vars.clone();
    vars.insert("GRIDWHISTLE_HTTP__PORT".into(), port.to_string());
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridwhistle"));
    command.args(args).env_clear().envs(&vars);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("server starts");
    let client = reqwest::Client::new();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..300 {
        if client.get(&ready_url).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("server stops");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(ready, "the server answers /readyz; stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn a_misspelt_environment_variable_stops_start_up_naming_the_right_one() {
    let message = Settings::load(SettingsSources { local_file: None, env: env(&[("GRIDWHISTLE_HTTP_PORT", "18150")]) })
        .expect_err("a typo in a GRIDWHISTLE_ variable is not silently ignored")
        .to_string();
    assert!(message.contains("GRIDWHISTLE_HTTP_PORT"), "names the variable: {message}");
    assert!(message.contains("did you mean GRIDWHISTLE_HTTP__PORT?"), "suggests the right one: {message}");

    let message = Settings::load(SettingsSources {
        local_file: None,
        env: env(&[("GRIDWHISTLE_LOG__LEVEL", "warn"), ("GRIDWHISTLE_NOTHING_LIKE_IT", "1")]),
    })
    .expect_err("an unknown variable stops start-up")
    .to_string();
    assert!(message.contains("GRIDWHISTLE_NOTHING_LIKE_IT"), "{message}");
    assert!(message.contains("config/default.toml"), "points to the list of keys: {message}");

    // Every variable the documentation shows, and the local-file variable, still load.
    Settings::load(SettingsSources {
        local_file: None,
        env: env(&[
            ("GRIDWHISTLE_HTTP__PORT", "9000"),
            ("GRIDWHISTLE_DATABASE_URL", "postgres://a@h/db"),
            ("GRIDWHISTLE_SLA__NORMAL__ACKNOWLEDGE", "1h working"),
            ("GRIDWHISTLE_CONFIG", "ignored-here.toml"),
            ("GRIDWHISTLE_LOG__FORMAT", "json"),
            ("HTTP_PORT", "1"),
        ]),
    })
    .expect("known keys load");

    // The binary stops before it touches anything, once, with the usage exit code.
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/typo.db", dir.path().display());
    let run = cli(&["migrate"], &env(&[("GRIDWHISTLE_DATABASE_URL", &url), ("GRIDWHISTLE_HTTP_PORT", "18150")]), None);
    assert!(!run.ok);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("did you mean GRIDWHISTLE_HTTP__PORT?"), "{}", run.stderr);
    assert!(!dir.path().join("typo.db").exists(), "nothing was created");
}

#[test]
fn an_unknown_section_or_key_in_a_config_file_stops_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("local.toml");
    std::fs::write(&path, "[htttp]\nport = 7000\n[log]\nformat = \"json\"\nlevle = \"debug\"\n").expect("write");
    let message = Settings::load(SettingsSources { local_file: Some(path.clone()), env: HashMap::new() })
        .expect_err("a typo in the file is not silently ignored")
        .to_string();
    assert!(message.contains(&path.display().to_string()), "names the file: {message}");
    assert!(message.contains("`htttp`") && message.contains("did you mean `http`?"), "{message}");
    assert!(message.contains("`log.levle`") && message.contains("did you mean `log.level`?"), "{message}");

    // A file using real keys, nested tables and the rule array included, loads.
    std::fs::write(
        &path,
        "database_url = \"sqlite://x.db\"\n[http]\nport = 7000\n[sla.urgent]\nacknowledge = \"20m\"\n\
         [escalation]\nrules = [{ trigger = \"resolve_breach\", notify = [\"county_supervisor\"], supervision = \"supervise\" }]\n",
    )
    .expect("write");
    let settings = Settings::load(SettingsSources { local_file: Some(path), env: HashMap::new() }).expect("loads");
    assert_eq!(settings.http.port, 7000);
    assert_eq!(settings.escalation.rules.len(), 1);
}

#[test]
fn a_sqlite_url_without_mode_creates_the_database_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("new-folder").join("fresh.db");
    let url = format!("sqlite://{}", file.display());
    let run = cli(&["migrate"], &env(&[("GRIDWHISTLE_DATABASE_URL", &url)]), None);
    assert!(run.ok, "migrate on a fresh file: {} {}", run.stdout, run.stderr);
    assert!(file.exists(), "the file was created");

    // An explicit read-only mode is respected, and the message says what to change.
    let other = dir.path().join("missing.db");
    let run = cli(
        &["migrate"],
        &env(&[("GRIDWHISTLE_DATABASE_URL", &format!("sqlite://{}?mode=rw", other.display()))]),
        None,
    );
    assert!(!run.ok);
    assert!(run.stderr.contains(&other.display().to_string()), "names the file: {}", run.stderr);
    assert!(run.stderr.contains("mode=rwc"), "says how to create it: {}", run.stderr);
    assert!(!other.exists());
}

#[test]
fn a_failure_is_printed_once_and_says_what_failed() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The "folder" of the database is a plain file: neither it nor the database can be made.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "x").expect("write");
    let url = format!("sqlite://{}/gw.db", blocker.display());
    let run = cli(&["migrate"], &env(&[("GRIDWHISTLE_DATABASE_URL", &url), ("GRIDWHISTLE_LOG__LEVEL", "info")]), None);
    assert!(!run.ok);
    let both = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(
        both.matches("gw.db").count(),
        1,
        "the error appears once: stdout `{}`, stderr `{}`",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains(&blocker.display().to_string()), "{}", run.stderr);
    assert!(run.stderr.contains("folder"), "says the folder is the problem: {}", run.stderr);
}

#[tokio::test]
async fn a_second_migrate_says_there_is_nothing_to_apply() {
    for backend in backends() {
        let (url, _guard) = fresh_database(backend).await;
        let vars = test_env(&url);
        let first = cli(&["migrate"], &vars, None);
        assert!(first.ok, "{}", first.stderr);
        let total = <migration::Migrator as migration::MigratorTrait>::migrations().len();
        assert!(first.stdout.contains(&format!("applied {total} migrations")), "{}", first.stdout);
        let second = cli(&["migrate"], &vars, None);
        assert!(second.ok, "{}", second.stderr);
        assert!(second.stdout.contains("nothing to apply"), "{}", second.stdout);
        assert!(!second.stdout.contains("applied"), "{}", second.stdout);
    }
}

#[test]
fn help_says_what_no_arguments_do_how_to_choose_the_database_and_how_to_make_the_first_admin() {
    let help = cli(&["--help"], &HashMap::new(), None);
    assert!(help.ok);
    for needle in [
        "serve --demo",
        "GRIDWHISTLE_DATABASE_URL",
        "sqlite://",
        "postgres://",
        "user create --username admin --role admin",
        "config/default.toml",
    ] {
        assert!(help.stdout.contains(needle), "--help mentions {needle}: {}", help.stdout);
    }
    let create = cli(&["user", "create", "--help"], &HashMap::new(), None);
    assert!(create.ok);
    for needle in ["grid_worker", "dispatcher", "department_staff", "supervisor", "admin", "3–64", "standard input"] {
        assert!(create.stdout.contains(needle), "`user create --help` mentions {needle}: {}", create.stdout);
    }
    let wrong =
        cli(&["user", "create", "--username", "a", "--role", "boss", "--display-name", "x"], &HashMap::new(), None);
    assert!(!wrong.ok);
    assert!(wrong.stderr.contains("grid_worker"), "a wrong role lists the right ones: {}", wrong.stderr);
}

#[tokio::test]
async fn serve_says_how_to_create_the_first_admin_and_when_it_skips_the_demo() {
    let (url, _guard) = fresh_database(Backend::Sqlite).await;
    let mut vars = test_env(&url);
    vars.insert("GRIDWHISTLE_LOG__LEVEL".into(), "info".into());

    let log = serve_and_stop(&["serve"], &vars).await;
    assert!(log.contains("no users") && log.contains("gridwhistle user create"), "first-admin hint: {log}");
    assert!(!log.contains('\u{1b}'), "no colour codes in a redirected log: {log:?}");

    let created = cli(
        &["user", "create", "--username", "ops.admin", "--role", "admin", "--display-name", "运维"],
        &vars,
        Some("a-long-ops-password\n"),
    );
    assert!(created.ok, "{}", created.stderr);

    let log = serve_and_stop(&["serve", "--demo"], &vars).await;
    assert!(log.contains("demo data not loaded") && log.contains("already has users"), "demo skip is said: {log}");
    assert!(!log.contains("gridwhistle user create"), "no first-admin hint once there are users: {log}");
    let log = serve_and_stop(&["serve"], &vars).await;
    assert!(!log.contains("no users"), "{log}");
}
