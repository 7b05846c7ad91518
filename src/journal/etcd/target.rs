//! Where an etcd journal lives: `etcd://host:port,host:port/prefix`, parsed into endpoints and
//! the key prefix every record goes under (so several primed clusters can share one etcd).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    /// Ends with `/`.
    pub prefix: String,
}

const SCHEME: &str = "etcd://";
const DEFAULT_PREFIX: &str = "/primed/";

impl EtcdTarget {
    /// Parses `etcd://h1:2379,h2:2379[/prefix]`; the prefix defaults to `/primed/`.
    pub fn parse(url: &str) -> Result<EtcdTarget, String> {
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("{url:?} is not an etcd:// URL"))?;
        let (hosts, prefix) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, DEFAULT_PREFIX),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(format!("{url:?} names no etcd endpoint"));
        }
        let prefix = if prefix == "/" {
            DEFAULT_PREFIX
        } else {
            prefix
        };
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(EtcdTarget { endpoints, prefix })
    }
}

impl fmt::Display for EtcdTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect();
        write!(f, "{SCHEME}{}{}", hosts.join(","), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_prefix() {
        let target = EtcdTarget::parse("etcd://a:1,b:2/svc/primed").unwrap();
        assert_eq!(target.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(target.prefix, "/svc/primed/");
        assert_eq!(target.to_string(), "etcd://a:1,b:2/svc/primed/");
        let plain = EtcdTarget::parse("etcd://127.0.0.1:2379").unwrap();
        assert_eq!(plain.prefix, "/primed/");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(EtcdTarget::parse("http://a:1")
            .unwrap_err()
            .contains("not an etcd://"));
        assert!(EtcdTarget::parse("etcd:///p")
            .unwrap_err()
            .contains("no etcd endpoint"));
    }
}
