//! Field-precise checks of the raw `linux.seccomp` JSON.
//!
//! oci-spec's types refuse an unknown action, operator, architecture or flag while
//! `config.json` is parsed, but serde's error names only the value and a line/column.
//! [`validate_json`] runs over the raw value first so that the error names the field
//! (`linux.seccomp.syscalls[3].args[0].op`), as every other runtime error does.

use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::SeccompError;

/// Checks that `value` deserializes as `T`; the error names `field`.
fn check<T: DeserializeOwned>(value: &Value, field: &str) -> Result<(), SeccompError> {
    T::deserialize(value)
        .map(|_| ())
        .map_err(|e| SeccompError::Invalid {
            field: field.to_string(),
            reason: e.to_string(),
        })
}

/// Checks an optional member `key` of `obj` as `T`.
fn member<T: DeserializeOwned>(obj: &Value, key: &str, field: &str) -> Result<(), SeccompError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => check::<T>(v, &format!("{field}.{key}")),
    }
}

/// Checks each element of the optional array member `key` with `each(element, path)`.
fn array(
    obj: &Value,
    key: &str,
    field: &str,
    mut each: impl FnMut(&Value, &str) -> Result<(), SeccompError>,
) -> Result<(), SeccompError> {
    let path = format!("{field}.{key}");
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| each(v, &format!("{path}[{i}]"))),
        Some(_) => Err(SeccompError::Invalid {
            field: path,
            reason: "must be an array".into(),
        }),
    }
}

/// Checks the raw JSON of `linux.seccomp` (the object itself, not the whole config) for
/// unknown actions, operators, architectures and flags and for values of the wrong type,
/// naming the field at fault. A profile that passes deserializes as
/// `oci_spec::runtime::LinuxSeccomp`; [`super::compile`] does the semantic checks.
pub fn validate_json(seccomp: &Value) -> Result<(), SeccompError> {
    const ROOT: &str = "linux.seccomp";
    if !seccomp.is_object() {
        return Err(SeccompError::Invalid {
            field: ROOT.into(),
            reason: "must be an object".into(),
        });
    }
    match seccomp.get("defaultAction") {
        Some(v) => check::<LinuxSeccompAction>(v, &format!("{ROOT}.defaultAction"))?,
        None => {
            return Err(SeccompError::Invalid {
                field: format!("{ROOT}.defaultAction"),
                reason: "is required".into(),
            })
        }
    }
    member::<u32>(seccomp, "defaultErrnoRet", ROOT)?;
    array(seccomp, "architectures", ROOT, check::<Arch>)?;
    array(seccomp, "flags", ROOT, |v, f| {
        check::<LinuxSeccompFilterFlag>(v, f)
    })?;
    member::<String>(seccomp, "listenerPath", ROOT)?;
    member::<String>(seccomp, "listenerMetadata", ROOT)?;
    array(seccomp, "syscalls", ROOT, |rule, f| {
        if !rule.is_object() {
            return Err(SeccompError::Invalid {
                field: f.into(),
                reason: "must be an object".into(),
            });
        }
        array(rule, "names", f, check::<String>)?;
        match rule.get("action") {
            Some(v) => check::<LinuxSeccompAction>(v, &format!("{f}.action"))?,
            None => {
                return Err(SeccompError::Invalid {
                    field: format!("{f}.action"),
                    reason: "is required".into(),
                })
            }
        }
        member::<u32>(rule, "errnoRet", f)?;
        array(rule, "args", f, |arg, af| {
            member::<usize>(arg, "index", af)?;
            member::<u64>(arg, "value", af)?;
            member::<u64>(arg, "valueTwo", af)?;
            match arg.get("op") {
                Some(v) => check::<LinuxSeccompOperator>(v, &format!("{af}.op")),
                None => Err(SeccompError::Invalid {
                    field: format!("{af}.op"),
                    reason: "is required".into(),
                }),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(v: Value) -> String {
        match validate_json(&v) {
            Err(SeccompError::Invalid { field, .. }) => field,
            other => panic!("{v}: expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_names_are_reported_with_their_field() {
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]})),
            "linux.seccomp.syscalls[1].args[1].op"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_EXPLODE"})),
            "linux.seccomp.defaultAction"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["read"], "action": "ALLOW"}]})),
            "linux.seccomp.syscalls[0].action"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ALLOW",
                            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_NOPE"]})),
            "linux.seccomp.flags[1]"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ALLOW",
                            "architectures": ["SCMP_ARCH_VAX"]})),
            "linux.seccomp.architectures[0]"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1})),
            "linux.seccomp.defaultErrnoRet"
        );
        assert_eq!(
            field_of(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": -1, "value": 1, "op": "SCMP_CMP_EQ"}]}]})),
            "linux.seccomp.syscalls[0].args[0].index"
        );
        assert_eq!(field_of(json!({})), "linux.seccomp.defaultAction");
    }

    #[test]
    fn valid_profiles_pass_and_deserialize() {
        let v = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]});
        validate_json(&v).expect("valid");
        serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(v).expect("deserializes");
        // The Docker default profile, round-tripped through JSON, passes too.
        let docker =
            serde_json::to_value(super::super::docker_default_profile(&[])).expect("serializes");
        validate_json(&docker).expect("docker profile is valid");
    }
}
