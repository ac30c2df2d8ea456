//! The parameter table of every trigger type in the shape of KEDA's generated
//! `schema/generated/scalers-schema.yaml`, so `keda-rs scalers --schema` can be diffed against it.
//! Like KEDA's, every parameter's type is `string` (values arrive as strings); aliases are listed
//! as parameters of their own, as KEDA lists each accepted name.

use serde::{Deserialize, Serialize};

use crate::params::{ParamInfo, Source};
use crate::registry::Registry;

/// The whole document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    /// The version of the scalers described.
    pub keda_version: String,
    /// Always 1.
    pub schema_version: u32,
    /// One entry per trigger type.
    pub scalers: Vec<ScalerSchema>,
}

/// One trigger type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalerSchema {
    /// The trigger type.
    #[serde(rename = "type")]
    pub trigger_type: String,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Vec<ParameterSchema>,
}

/// One parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSchema {
    /// The name.
    pub name: String,
    /// Always `string`.
    #[serde(rename = "type")]
    pub value_type: String,
    /// Absent is fine.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
    /// The value used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Allowed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_value: Vec<String>,
    /// Removed, with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
    /// On its way out, with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_announce: Option<String>,
    /// At most one of these in a list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusive_set: Vec<String>,
    /// List separator other than `,`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Read from `metadata`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub metadata_variable_readable: bool,
    /// Read from the target's environment through `<name>FromEnv`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub env_variable_readable: bool,
    /// Read from a TriggerAuthentication.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trigger_authentication_variable_readable: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

fn rows(info: &ParamInfo) -> impl Iterator<Item = ParameterSchema> + '_ {
    std::iter::once(info.name)
        .chain(info.aliases.iter().copied())
        .map(move |name| ParameterSchema {
            name: name.to_owned(),
            value_type: "string".to_owned(),
            optional: info.optional,
            default: info.default.map(str::to_owned),
            allowed_value: info.allowed.iter().map(|v| (*v).to_owned()).collect(),
            deprecated: info.deprecated.map(str::to_owned),
            deprecated_announce: info.deprecated_announce.map(str::to_owned),
            exclusive_set: info.exclusive.iter().map(|v| (*v).to_owned()).collect(),
            separator: info.separator.map(String::from),
            metadata_variable_readable: info.sources.contains(&Source::TriggerMetadata),
            env_variable_readable: info.sources.contains(&Source::ResolvedEnv),
            trigger_authentication_variable_readable: info.sources.contains(&Source::AuthParams),
        })
}

/// The schema of every trigger type in `registry`.
pub fn schema(registry: &Registry, keda_version: &str) -> Schema {
    Schema {
        keda_version: keda_version.to_owned(),
        schema_version: 1,
        scalers: registry
            .entries()
            .iter()
            .map(|d| ScalerSchema {
                trigger_type: d.trigger_type.to_owned(),
                parameters: d.params().iter().flat_map(rows).collect(),
            })
            .collect(),
    }
}
