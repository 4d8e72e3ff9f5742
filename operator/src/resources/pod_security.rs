//! A checker of the Pod Security Standards "restricted" profile (Kubernetes v1.33, which
//! includes every "baseline" rule), applied to a pod template the way the PodSecurity admission
//! controller applies it to the pods created from it. Test-only: it proves the brokers' pods
//! would be admitted into a namespace labelled `pod-security.kubernetes.io/enforce: restricted`.

use k8s_openapi::api::core::v1::{
    Container, PodSecurityContext, PodSpec, PodTemplateSpec, SELinuxOptions, SeccompProfile,
    SecurityContext,
};

/// Sysctls the baseline profile allows (the "safe" set as of v1.29).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
/// SELinux types the baseline profile allows (besides unset).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn all_containers(pod: &PodSpec) -> Vec<(&str, Option<&SecurityContext>)> {
    let mut out: Vec<(&str, Option<&SecurityContext>)> = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
        .map(|c: &Container| (c.name.as_str(), c.security_context.as_ref()))
        .collect();
    for c in pod.ephemeral_containers.as_deref().unwrap_or_default() {
        out.push((c.name.as_str(), c.security_context.as_ref()));
    }
    out
}

fn seccomp_type(profile: Option<&SeccompProfile>) -> Option<&str> {
    profile.map(|p| p.type_.as_str())
}

fn check_selinux(who: &str, opts: Option<&SELinuxOptions>, errors: &mut Vec<String>) {
    let Some(opts) = opts else { return };
    if let Some(t) = opts.type_.as_deref() {
        if !t.is_empty() && !SELINUX_TYPES.contains(&t) {
            errors.push(format!("{who}: seLinuxOptions.type {t} is not allowed"));
        }
    }
    if opts.user.as_deref().is_some_and(|u| !u.is_empty())
        || opts.role.as_deref().is_some_and(|r| !r.is_empty())
    {
        errors.push(format!("{who}: seLinuxOptions.user/role must be unset"));
    }
}

fn check_apparmor(who: &str, kind: Option<&str>, errors: &mut Vec<String>) {
    if let Some(kind) = kind {
        if kind != "RuntimeDefault" && kind != "Localhost" {
            errors.push(format!("{who}: appArmorProfile.type {kind} is not allowed"));
        }
    }
}

/// Every rule of the "restricted" profile the pod template breaks, one message each; empty
/// when the pods would be admitted.
pub(crate) fn restricted_violations(template: &PodTemplateSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(pod) = template.spec.as_ref() else {
        return vec!["pod template has no spec".into()];
    };
    let default_psc = PodSecurityContext::default();
    let psc = pod.security_context.as_ref().unwrap_or(&default_psc);

    // Baseline: host namespaces.
    for (field, set) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if set == Some(true) {
            errors.push(format!("pod: {field} must not be true"));
        }
    }
    // Baseline: HostProcess (Windows).
    if psc
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
    {
        errors.push("pod: windowsOptions.hostProcess must not be true".into());
    }
    // Restricted: volume types (this also forbids hostPath, the baseline rule).
    for v in pod.volumes.as_deref().unwrap_or_default() {
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if !allowed {
            errors.push(format!("volume {}: type is not allowed", v.name));
        }
    }
    // Baseline: sysctls.
    for s in psc.sysctls.as_deref().unwrap_or_default() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            errors.push(format!("pod: sysctl {} is not allowed", s.name));
        }
    }
    check_selinux("pod", psc.se_linux_options.as_ref(), &mut errors);
    check_apparmor(
        "pod",
        psc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
        &mut errors,
    );
    // Baseline: AppArmor through the (deprecated) annotations.
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    for (key, value) in annotations.into_iter().flatten() {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && value != "runtime/default"
            && !value.starts_with("localhost/")
        {
            errors.push(format!(
                "annotation {key}: AppArmor profile {value} is not allowed"
            ));
        }
    }
    // Restricted: runAsUser != 0 at pod level.
    if psc.run_as_user == Some(0) {
        errors.push("pod: runAsUser must not be 0".into());
    }
    let pod_non_root = psc.run_as_non_root == Some(true);
    let pod_seccomp = seccomp_type(psc.seccomp_profile.as_ref());
    if let Some(t) = pod_seccomp {
        if t != "RuntimeDefault" && t != "Localhost" {
            errors.push(format!("pod: seccompProfile.type {t} is not allowed"));
        }
    }

    for (name, sc) in all_containers(pod) {
        let who = format!("container {name}");
        let default_sc = SecurityContext::default();
        let sc = sc.unwrap_or(&default_sc);
        // Baseline: privileged, HostProcess, procMount, SELinux, AppArmor.
        if sc.privileged == Some(true) {
            errors.push(format!("{who}: privileged must not be true"));
        }
        if sc
            .windows_options
            .as_ref()
            .and_then(|w| w.host_process)
            .unwrap_or(false)
        {
            errors.push(format!(
                "{who}: windowsOptions.hostProcess must not be true"
            ));
        }
        if let Some(pm) = sc.proc_mount.as_deref() {
            if pm != "Default" {
                errors.push(format!("{who}: procMount {pm} is not allowed"));
            }
        }
        check_selinux(&who, sc.se_linux_options.as_ref(), &mut errors);
        check_apparmor(
            &who,
            sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
            &mut errors,
        );
        // Restricted: privilege escalation must be explicitly off.
        if sc.allow_privilege_escalation != Some(false) {
            errors.push(format!("{who}: allowPrivilegeEscalation must be false"));
        }
        // Restricted: capabilities drop ALL, add at most NET_BIND_SERVICE.
        let caps = sc.capabilities.as_ref();
        if !caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|c| c == "ALL"))
        {
            errors.push(format!("{who}: capabilities.drop must include ALL"));
        }
        for added in caps.and_then(|c| c.add.as_deref()).unwrap_or_default() {
            if added != "NET_BIND_SERVICE" {
                errors.push(format!("{who}: capability {added} must not be added"));
            }
        }
        // Restricted: non-root, from the container or inherited from the pod, never overridden
        // to false.
        match sc.run_as_non_root {
            Some(false) => errors.push(format!("{who}: runAsNonRoot must not be false")),
            None if !pod_non_root => errors.push(format!("{who}: runAsNonRoot must be true")),
            _ => {}
        }
        if sc.run_as_user == Some(0) {
            errors.push(format!("{who}: runAsUser must not be 0"));
        }
        // Restricted: seccomp RuntimeDefault or Localhost, from the container or the pod.
        match seccomp_type(sc.seccomp_profile.as_ref()).or(pod_seccomp) {
            Some("RuntimeDefault" | "Localhost") => {}
            Some(t) => errors.push(format!("{who}: seccompProfile.type {t} is not allowed")),
            None => errors.push(format!("{who}: seccompProfile.type must be set")),
        }
    }
    for c in pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter())
    {
        // Baseline: host ports.
        for port in c.ports.as_deref().unwrap_or_default() {
            if port.host_port.is_some_and(|p| p != 0) {
                errors.push(format!("container {}: hostPort must not be set", c.name));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, ContainerPort, HostPathVolumeSource, PodSecurityContext, Sysctl, Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn compliant() -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        ..SeccompProfile::default()
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![Container {
                    name: "c".into(),
                    security_context: Some(SecurityContext {
                        allow_privilege_escalation: Some(false),
                        capabilities: Some(Capabilities {
                            drop: Some(vec!["ALL".into()]),
                            ..Capabilities::default()
                        }),
                        ..SecurityContext::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn container_sc(t: &mut PodTemplateSpec) -> &mut SecurityContext {
        t.spec.as_mut().expect("spec").containers[0]
            .security_context
            .as_mut()
            .expect("sc")
    }

    #[test]
    fn each_rule_refuses_what_it_names() {
        assert_eq!(restricted_violations(&compliant()), Vec::<String>::new());
        type Breaker = fn(&mut PodTemplateSpec);
        let cases: [(&str, Breaker); 10] = [
            ("hostNetwork", |t| {
                t.spec.as_mut().expect("spec").host_network = Some(true)
            }),
            ("privileged", |t| container_sc(t).privileged = Some(true)),
            ("allowPrivilegeEscalation", |t| {
                container_sc(t).allow_privilege_escalation = None
            }),
            ("capabilities.drop", |t| container_sc(t).capabilities = None),
            ("capability SYS_ADMIN", |t| {
                container_sc(t).capabilities.as_mut().expect("caps").add =
                    Some(vec!["SYS_ADMIN".into()])
            }),
            ("runAsNonRoot must not be false", |t| {
                container_sc(t).run_as_non_root = Some(false)
            }),
            ("runAsUser must not be 0", |t| {
                container_sc(t).run_as_user = Some(0)
            }),
            ("seccompProfile.type Unconfined", |t| {
                container_sc(t).seccomp_profile = Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    ..SeccompProfile::default()
                })
            }),
            ("procMount", |t| {
                container_sc(t).proc_mount = Some("Unmasked".into())
            }),
            ("volume host: type", |t| {
                t.spec.as_mut().expect("spec").volumes = Some(vec![Volume {
                    name: "host".into(),
                    host_path: Some(HostPathVolumeSource {
                        path: "/".into(),
                        ..HostPathVolumeSource::default()
                    }),
                    ..Volume::default()
                }])
            }),
        ];
        for (expected, breaker) in cases {
            let mut t = compliant();
            breaker(&mut t);
            let errors = restricted_violations(&t);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:?}"
            );
        }
        let mut t = compliant();
        let psc = t
            .spec
            .as_mut()
            .and_then(|p| p.security_context.as_mut())
            .expect("psc");
        psc.sysctls = Some(vec![Sysctl {
            name: "kernel.msgmax".into(),
            value: "1".into(),
        }]);
        psc.se_linux_options = Some(SELinuxOptions {
            type_: Some("spc_t".into()),
            ..SELinuxOptions::default()
        });
        t.metadata = Some(ObjectMeta {
            annotations: Some(BTreeMap::from([(
                "container.apparmor.security.beta.kubernetes.io/c".to_string(),
                "unconfined".to_string(),
            )])),
            ..ObjectMeta::default()
        });
        let errors = restricted_violations(&t);
        for expected in [
            "sysctl kernel.msgmax",
            "seLinuxOptions.type spc_t",
            "AppArmor",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:?}"
            );
        }

        let mut t = compliant();
        t.spec.as_mut().expect("spec").containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            host_port: Some(80),
            ..ContainerPort::default()
        }]);
        assert!(restricted_violations(&t)
            .iter()
            .any(|e| e.contains("hostPort")));
    }
}
