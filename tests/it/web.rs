//! The observer in a real headless Chromium (Debian's, driven by chromedriver): it loads
//! without a console error, shows every tester, shows a kill made from the page as a crash and
//! a restart in the tree within a second, answers a submitted number, and without its token
//! shows why and no data.

use std::time::Duration;

use crate::common::browser::Browser;
use crate::common::Daemon;

const PATIENCE: Duration = Duration::from_secs(20);

/// A daemon with a TCP listener, and the observer's address `primed web` prints.
fn observed(testers: u32) -> (Daemon, String) {
    let daemon = Daemon::builder()
        .testers(testers)
        .args(&["--http-listen", "127.0.0.1:0"])
        .start();
    daemon.wait_for("the TCP listener", |l| l["event"] == "http_listening");
    let out = daemon.cli(&["web"]);
    assert!(out.status.success(), "{}", crate::common::describe(&out));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/#token="),
        "{url}"
    );
    (daemon, url)
}

#[test]
fn the_observer_shows_the_tree_and_a_kill_from_it_and_answers_a_number() {
    let (daemon, url) = observed(3);
    let browser = Browser::start();
    browser.open(&url);
    browser.wait_until(
        "every tester in the tree, and the event stream live",
        PATIENCE,
        "return document.querySelectorAll('#tree [data-actor^=\"tester-\"]').length === 3 \
         && document.getElementById('live').textContent === 'live'",
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    browser.click("[data-kill='tester-2']");
    let asked = browser.accept_dialog();
    assert!(asked.contains("Kill tester-2"), "{asked}");
    let shown = browser.wait_until(
        "the restart in the tree",
        PATIENCE,
        "const node = document.querySelector('#tree [data-actor=\"tester-2\"]'); \
         return node !== null && node.dataset.restarts === '1' \
         && node.querySelector('.last')?.textContent.startsWith('restart') === true",
    );
    assert!(
        shown < Duration::from_secs(1),
        "the restart showed after {shown:?}"
    );
    let events = browser.eval("return document.getElementById('events').innerText");
    let events = events.as_str().unwrap_or_default();
    assert!(
        events.contains("crash tester-2") && events.contains("restart tester-2"),
        "{events}"
    );
    daemon.wait_for("the kill", |l| {
        l["event"] == "kill" && l["actor"] == "tester-2"
    });

    browser.type_into("#numbers", "97 91");
    browser.click("#submit-form button");
    browser.wait_until(
        "the answers",
        PATIENCE,
        "const text = document.getElementById('answers').innerText; \
         return text.includes('97 is prime') && text.includes('91 is composite')",
    );
    browser.type_into("#lookup-id", "1");
    browser.click("#lookup-form button");
    browser.wait_until(
        "the job's detail",
        PATIENCE,
        "return document.getElementById('lookup').innerText.includes('prime')",
    );
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // At a phone's width it is one column, and nothing runs off the side.
    browser.resize(390, 844);
    browser.wait_until(
        "the page to fit a phone's width",
        PATIENCE,
        "return document.documentElement.scrollWidth <= window.innerWidth",
    );
}

#[test]
fn the_observer_without_its_token_says_why_and_shows_no_data() {
    let (_daemon, url) = observed(1);
    let (base, _) = url.split_once('#').expect("a fragment");
    let browser = Browser::start();
    for (address, why) in [
        (base.to_string(), "needs the daemon's token"),
        // Another query, so that the browser loads the page again (a new fragment alone
        // would not).
        (format!("{base}?again#token=00"), "not this daemon's"),
    ] {
        browser.open(&address);
        browser.wait_until(
            "the refusal",
            PATIENCE,
            "return !document.getElementById('auth').hidden",
        );
        let said = browser.eval("return document.getElementById('auth').innerText");
        assert!(said.as_str().unwrap_or_default().contains(why), "{said}");
        let shown = browser.eval(
            "return [document.getElementById('main').hidden, \
             document.querySelectorAll('#tree li').length, \
             document.getElementById('counts').textContent]",
        );
        assert_eq!(shown, serde_json::json!([true, 0, ""]), "no data shown");
    }
}

/// README's screenshot: the observer under load (`SCREENSHOT=docs/observer.png cargo test
/// --release --test it -- --ignored observer_screenshot`).
#[test]
#[ignore]
fn observer_screenshot() {
    let (daemon, url) = observed(2);
    let mut load = daemon.spawn_cli(&["bench", "--jobs", "3000000", "--mix", "mixed"]);
    let browser = Browser::start();
    browser.open(&url);
    browser.wait_until(
        "a minute of throughput",
        Duration::from_secs(120),
        "return document.querySelector('#throughput polyline')?.getAttribute('points')\
         .split(' ').length >= 60",
    );
    let _ = daemon.cli(&["kill", "tester-1"]);
    browser.wait_until(
        "the restart",
        PATIENCE,
        "return document.querySelector('#tree [data-actor=\"tester-1\"] .last') !== null",
    );
    let path = std::env::var("SCREENSHOT").unwrap_or_else(|_| "observer.png".into());
    std::fs::write(&path, browser.screenshot()).expect("write the screenshot");
    let _ = load.kill();
    let _ = load.wait();
}
