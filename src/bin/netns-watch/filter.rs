//! `--match` and `--ignore`: which names are reported.

use globset::{Glob, GlobSet, GlobSetBuilder};
use netns_watch::Event;

/// Globs on whole names. A name is admitted if it matches some `--match`
/// (or none was given) and no `--ignore`. Events that are not about a
/// name (directories, overflow) are always admitted.
#[derive(Debug)]
pub(crate) struct NameFilter {
    matches: Option<GlobSet>,
    ignores: GlobSet,
}

impl NameFilter {
    pub(crate) fn new(matches: &[String], ignores: &[String]) -> Result<Self, String> {
        Ok(Self {
            matches: if matches.is_empty() {
                None
            } else {
                Some(build(matches, "--match")?)
            },
            ignores: build(ignores, "--ignore")?,
        })
    }

    pub(crate) fn admits(&self, event: &Event) -> bool {
        let Some(ns) = event.namespace() else {
            return true;
        };
        // Names hold no `/`, so matching them as paths is matching the
        // whole name, byte for byte.
        let name = std::path::Path::new(&ns.name);
        self.matches.as_ref().is_none_or(|set| set.is_match(name)) && !self.ignores.is_match(name)
    }
}

fn build(globs: &[String], flag: &str) -> Result<GlobSet, String> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        set.add(Glob::new(glob).map_err(|e| format!("{flag} {glob:?}: {e}"))?);
    }
    set.build().map_err(|e| format!("{flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netns_watch::Namespace;

    fn created(name: &str) -> Event {
        Event::Created(Namespace::new("/run/netns", name))
    }

    #[test]
    fn a_plain_name_matches_only_itself() {
        let f = NameFilter::new(&["mario".into()], &[]).unwrap();
        assert!(f.admits(&created("mario")));
        assert!(!f.admits(&created("mario2")));
        assert!(!f.admits(&created("supermario")));
    }

    #[test]
    fn globs_and_ignores_combine() {
        let f = NameFilter::new(&["cni-*".into()], &["cni-test*".into()]).unwrap();
        assert!(f.admits(&created("cni-1234")));
        assert!(!f.admits(&created("cni-test-1")));
        assert!(!f.admits(&created("blue")));
    }

    #[test]
    fn directory_events_pass() {
        let f = NameFilter::new(&["x".into()], &[]).unwrap();
        assert!(f.admits(&Event::Overflow));
    }

    #[test]
    fn a_bad_glob_names_itself() {
        let err = NameFilter::new(&["a[".into()], &[]).unwrap_err();
        assert!(err.contains("--match") && err.contains("a["), "{err}");
    }
}
