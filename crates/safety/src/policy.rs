//! Policies: what happens when something matches, and the lists a tenant or campaign adds.
//!
//! A policy file is TOML; a set has a `[default]` table and optional `[tenants.<id>]` and
//! `[campaigns.<id>]` tables layered in that order (later tables override actions and add
//! to the lists). A single campaign file (for `atelier screen --policy`) is the same table
//! at top level.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::lists::{valid_category, Role, Term};
use crate::screen::Screener;
use crate::SafetyError;

/// What to do with flagged content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The job fails with `content_blocked`; nothing is stored.
    #[default]
    Reject,
    /// A blurred version is stored, flagged.
    Blur,
    /// Stored as is, flagged; never shown in public feeds.
    Flag,
}

/// Extra denied terms in one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    pub category: String,
    pub terms: Vec<String>,
}

/// Longest allow or deny term a policy layer takes (characters): terms are words and short
/// phrases, and each one is compiled into every screening of the layer.
pub const TERM_MAX: usize = 60;

/// One layer of policy; unset fields inherit from the layer below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// For flagged prompts (`reject` or `flag`; `blur` is treated as `flag` for text).
    pub action: Option<Action>,
    /// For images the safety checker flags.
    pub image_action: Option<Action>,
    /// Terms allowed even though a built-in list denies them (each use is audited).
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<DenyList>,
    /// Categories not enforced at all.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Draw the visible AI label on every output.
    pub label: Option<bool>,
}

/// Policies for a deployment: a default plus per-tenant and per-campaign layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    #[serde(default)]
    pub default: Policy,
    #[serde(default)]
    pub tenants: BTreeMap<String, Policy>,
    #[serde(default)]
    pub campaigns: BTreeMap<String, Policy>,
}

/// The policy in force for one job, resolved from its layers.
#[derive(Debug, Clone)]
pub struct Effective {
    pub action: Action,
    pub image_action: Action,
    pub label: bool,
    pub screener: Screener,
}

impl Policy {
    /// Parses one policy table.
    pub fn from_toml(name: &str, text: &str) -> Result<Self, SafetyError> {
        let p: Policy = toml::from_str(text).map_err(|e| SafetyError::Policy {
            at: name.to_owned(),
            message: e.to_string(),
        })?;
        p.check(name)?;
        Ok(p)
    }

    /// Rejects deny categories that are not `lower_snake` (they name audit entries and errors).
    pub fn check(&self, at: &str) -> Result<(), SafetyError> {
        let term = |place: String, t: &str| {
            let n = t.chars().count();
            let why = if t.trim().is_empty() {
                "must not be blank".to_owned()
            } else if n > TERM_MAX {
                format!("is {n} characters; at most {TERM_MAX}")
            } else if t.chars().any(|c| c.is_control() && c != '\n') {
                "must not contain control characters".to_owned()
            } else {
                return Ok(());
            };
            Err(SafetyError::Policy {
                at: at.to_owned(),
                message: format!("{place} {why}"),
            })
        };
        for (k, t) in self.allow.iter().enumerate() {
            term(format!("allow[{k}]"), t)?;
        }
        for (i, d) in self.deny.iter().enumerate() {
            for (k, t) in d.terms.iter().enumerate() {
                term(format!("deny[{i}].terms[{k}]"), t)?;
            }
        }
        for d in &self.deny {
            if !valid_category(&d.category) {
                return Err(SafetyError::Policy {
                    at: at.to_owned(),
                    message: format!(
                        "deny category {:?} must be lower-case letters, digits or _",
                        d.category
                    ),
                });
            }
        }
        Ok(())
    }

    /// Applies this layer on top of `base`.
    pub fn apply(&self, base: &mut Effective) {
        if let Some(a) = self.action {
            base.action = a;
        }
        if let Some(a) = self.image_action {
            base.image_action = a;
        }
        if let Some(l) = self.label {
            base.label = l;
        }
        base.screener.extend(
            self.allow
                .iter()
                .filter_map(|t| Term::compile(t, Role::Allow, "policy".into())),
        );
        for d in &self.deny {
            base.screener.extend(
                d.terms.iter().filter_map(|t| {
                    Term::compile(t, Role::Deny(d.category.clone()), "policy".into())
                }),
            );
        }
        for c in &self.disable {
            base.screener.disable(c);
        }
    }
}

impl PolicySet {
    /// Parses a policy set file.
    pub fn from_toml(name: &str, text: &str) -> Result<Self, SafetyError> {
        let s: PolicySet = toml::from_str(text).map_err(|e| SafetyError::Policy {
            at: name.to_owned(),
            message: e.to_string(),
        })?;
        s.default.check(&format!("{name} [default]"))?;
        for (k, p) in &s.tenants {
            p.check(&format!("{name} [tenants.{k}]"))?;
        }
        for (k, p) in &s.campaigns {
            p.check(&format!("{name} [campaigns.{k}]"))?;
        }
        Ok(s)
    }

    /// The policy for a tenant and (optionally) a campaign, on top of `builtin` lists.
    pub fn resolve(&self, builtin: &Screener, tenant: &str, campaign: Option<&str>) -> Effective {
        self.resolve_with(builtin, tenant, campaign, None)
    }

    /// As [`resolve`](Self::resolve), with one more layer on top: a campaign's own policy when
    /// campaigns live in the database rather than in the policy file.
    pub fn resolve_with(
        &self,
        builtin: &Screener,
        tenant: &str,
        campaign: Option<&str>,
        extra: Option<&Policy>,
    ) -> Effective {
        let mut e = Effective {
            action: Action::Reject,
            image_action: Action::Reject,
            label: false,
            screener: builtin.clone(),
        };
        self.default.apply(&mut e);
        if let Some(t) = self.tenants.get(tenant) {
            t.apply(&mut e);
        }
        if let Some(c) = campaign.and_then(|c| self.campaigns.get(c)) {
            c.apply(&mut e);
        }
        if let Some(x) = extra {
            x.apply(&mut e);
        }
        e
    }

    /// Whether a campaign id is configured.
    pub fn has_campaign(&self, id: &str) -> bool {
        self.campaigns.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_short_and_say_something() {
        let ok = Policy {
            allow: vec!["칼국수".into()],
            deny: vec![DenyList {
                category: "brand".into(),
                terms: vec!["x".repeat(TERM_MAX)],
            }],
            ..Policy::default()
        };
        assert!(ok.check("safety").is_ok());
        for (p, place) in [
            (
                Policy {
                    allow: vec![" ".into()],
                    ..ok.clone()
                },
                "allow[0]",
            ),
            (
                Policy {
                    allow: vec!["a\u{7}".into()],
                    ..ok.clone()
                },
                "allow[0]",
            ),
            (
                Policy {
                    deny: vec![DenyList {
                        category: "brand".into(),
                        terms: vec!["y".into(), "가".repeat(TERM_MAX + 1)],
                    }],
                    ..ok.clone()
                },
                "deny[0].terms[1]",
            ),
        ] {
            let e = p.check("safety").unwrap_err().to_string();
            assert!(e.contains(place), "{e}");
        }
    }

    #[test]
    fn layers_add_lists_and_override_actions() {
        let set = PolicySet::from_toml(
            "t",
            r#"
            [default]
            image_action = "blur"
            [tenants.acme]
            deny = [{ category = "brand", terms = ["rivalcola", "경쟁사"] }]
            [campaigns.bar]
            allow = ["cocaine"]
            image_action = "flag"
            "#,
        )
        .expect("parses");
        let b = Screener::builtin().expect("lists");
        let e = set.resolve(&b, "acme", None);
        assert_eq!(e.image_action, Action::Blur);
        let d = e.screener.screen("a can of RivalCola");
        assert_eq!(d.category.as_deref(), Some("brand"));
        assert!(!e.screener.screen("경쟁사 로고").allowed);
        assert!(
            set.resolve(&b, "other", None)
                .screener
                .screen("rivalcola")
                .allowed
        );
        let e = set.resolve(&b, "acme", Some("bar"));
        assert_eq!(e.image_action, Action::Flag);
        let d = e.screener.screen("cocaine");
        assert!(d.allowed);
        assert_eq!(d.overridden.len(), 1, "{d:?}");
    }

    #[test]
    fn bad_policies_are_named() {
        let e = PolicySet::from_toml("p.toml", "[default]\naction = \"explode\"").unwrap_err();
        assert!(e.to_string().contains("p.toml"), "{e}");
        let e = Policy::from_toml("c.toml", "deny = [{ category = \"Bad Cat\", terms = [] }]")
            .unwrap_err();
        assert!(e.to_string().contains("Bad Cat"), "{e}");
    }
}
