//! Configuration, read once at init.

use shared::config::{optional, required, Env};
use shared::domain::review::federation::{group_claim, IdpGroupMap};
use shared::EgressError;

/// What `pre-token-generation` needs.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The user-pool attribute holding the IdP's groups.
    pub(crate) claim: String,
    /// IdP group → reviewer group.
    pub(crate) map: IdpGroupMap,
}

/// The variables `from_env` reads, sorted (tested below; infra/validate/check_wiring.py checks
/// them against docs/contracts.md and the template).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const VARIABLES: &[&str] = &[
    "IDP_GROUP_CLAIM",
    "IDP_GROUP_MAP",
    "IG_REVIEWER_GROUP",
    "RIT_REVIEWER_GROUP",
];

impl Config {
    /// Fails with the name of the missing or malformed variable.
    pub(crate) fn from_env(env: &impl Env) -> Result<Self, EgressError> {
        let ig = required(env, "IG_REVIEWER_GROUP")?;
        let rit = required(env, "RIT_REVIEWER_GROUP")?;
        // The attribute the IdP attribute mapping writes (infra/template.yaml); no app client
        // lets a user write it. api-handler reads the same variables to re-map it.
        let claim = group_claim(optional(env, "IDP_GROUP_CLAIM").as_deref())?;
        let map = IdpGroupMap::parse(
            &optional(env, "IDP_GROUP_MAP").unwrap_or_default(),
            &[&ig, &rit],
        )?;
        Ok(Self { claim, map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_configured_then_the_map_only_names_reviewer_groups() {
        let env = [
            ("IG_REVIEWER_GROUP", "InformationGovernance"),
            ("RIT_REVIEWER_GROUP", "ResearchIT"),
            (
                "IDP_GROUP_MAP",
                "tre-ig=InformationGovernance,tre-rit=ResearchIT",
            ),
        ];
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.claim, "custom:idp_groups");
        assert_eq!(
            config.map.reviewer_groups(&["tre-rit".to_string()]),
            vec!["ResearchIT"]
        );

        let env = [
            ("IG_REVIEWER_GROUP", "InformationGovernance"),
            ("RIT_REVIEWER_GROUP", "ResearchIT"),
            ("IDP_GROUP_MAP", "tre-admin=Admins"),
        ];
        assert!(Config::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("IDP_GROUP_MAP"));
    }

    #[test]
    fn when_the_claim_is_not_a_custom_attribute_or_groups_are_missing_then_init_fails() {
        let env = [
            ("IG_REVIEWER_GROUP", "InformationGovernance"),
            ("RIT_REVIEWER_GROUP", "ResearchIT"),
            ("IDP_GROUP_CLAIM", "profile"),
        ];
        assert!(Config::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("IDP_GROUP_CLAIM"));
        let err = Config::from_env(&[("RIT_REVIEWER_GROUP", "ResearchIT")]).unwrap_err();
        assert!(err.to_string().contains("IG_REVIEWER_GROUP"));
    }

    #[test]
    fn when_configured_then_from_env_reads_exactly_the_declared_variables() {
        let env = shared::config::Recorder::new([
            ("IG_REVIEWER_GROUP", "InformationGovernance"),
            ("RIT_REVIEWER_GROUP", "ResearchIT"),
        ]);
        Config::from_env(&env).unwrap();
        assert_eq!(env.asked(), VARIABLES);
    }
}
