//! Fault injection, for tests only: off unless `serve --panic-on` / `--fail-restart` or the
//! `[faults]` config section ask for it. It lets the test suite (and the chaos soak) make a
//! tester panic on a chosen number, or make a tester unable to come back after a crash,
//! through the real binary.

use std::collections::HashSet;

use anyhow::Context;

use crate::job::TesterId;
use crate::number::Number;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    panic_on: HashSet<Number>,
    fail_restart: HashSet<TesterId>,
}

impl Faults {
    /// Parses the numbers to panic on and the tester names (`tester-K`) that fail to restart.
    pub fn parse(panic_on: &[String], fail_restart: &[String]) -> anyhow::Result<Faults> {
        let panic_on = panic_on
            .iter()
            .map(|text| {
                Number::parse(text, usize::MAX)
                    .with_context(|| format!("faults.panic_on: {text:?} is not a number"))
            })
            .collect::<anyhow::Result<_>>()?;
        let fail_restart = fail_restart
            .iter()
            .map(|name| {
                TesterId::from_name(name).with_context(|| {
                    format!("faults.fail_restart: {name:?} is not a tester name (tester-K)")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Faults {
            panic_on,
            fail_restart,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.panic_on.is_empty() && self.fail_restart.is_empty()
    }

    /// Panics if `n` is a number a tester must panic on.
    pub fn before_testing(&self, n: &Number) {
        if !self.panic_on.is_empty() && self.panic_on.contains(n) {
            panic!("fault injection: panic on {n}");
        }
    }

    pub fn fails_restart(&self, tester: TesterId) -> bool {
        self.fail_restart.contains(&tester)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_name_bad_entries() {
        let faults = Faults::parse(&["1009".into()], &["tester-2".into()]).unwrap();
        assert!(faults.fails_restart(TesterId(2)));
        assert!(!faults.fails_restart(TesterId(1)));
        assert!(std::panic::catch_unwind(|| faults.before_testing(&Number::Small(1009))).is_err());
        faults.before_testing(&Number::Small(1013));
        let err = Faults::parse(&["x".into()], &[]).unwrap_err();
        assert!(format!("{err:#}").contains("\"x\""), "{err:#}");
        let err = Faults::parse(&[], &["balancer".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("balancer"), "{err:#}");
    }
}
