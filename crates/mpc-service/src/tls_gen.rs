//! A local certificate authority for `mpc up --tls` and tests: `ca.pem` (+ `ca-key.pem`) and a
//! certificate + key per service under one directory. Running it again reuses every file that is
//! still valid (chains to the CA, names the same identity and hosts, not within 30 days of
//! expiry) and rewrites only what is missing or stale.
//!
//! Certificates are ECDSA P-256, valid for server and client authentication, and name their
//! holder with a URI SAN ([`crate::tls::PARTY_URI_PREFIX`] / [`crate::tls::SERVICE_URI_PREFIX`]).
//! Private keys are written with mode 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::tls::{PARTY_URI_PREFIX, SERVICE_URI_PREFIX, TlsConfig, TlsError};

/// Days before expiry at which a certificate is replaced.
const RENEW_DAYS: i64 = 30;
/// Validity of a new certificate, in years.
const VALID_YEARS: i32 = 2;

/// Whom a certificate is for.
#[derive(Clone, Debug)]
pub struct Subject {
    /// File stem: `<name>.pem`, `<name>-key.pem`.
    pub name: String,
    /// `urn:mpc:party:<id>` or `urn:mpc:service:<name>`.
    pub uri: String,
    /// Host names and addresses the certificate is valid for as a server.
    pub hosts: Vec<String>,
}

impl Subject {
    /// A server party's certificate, naming its party id.
    pub fn party(party_id: &str, hosts: &[String]) -> Self {
        Self {
            name: party_id.to_owned(),
            uri: format!("{PARTY_URI_PREFIX}{party_id}"),
            hosts: hosts.to_vec(),
        }
    }

    /// A service's certificate (`account`, `coordinator`, `router`, `party-api`).
    pub fn service(name: &str, hosts: &[String]) -> Self {
        Self {
            name: name.to_owned(),
            uri: format!("{SERVICE_URI_PREFIX}{name}"),
            hosts: hosts.to_vec(),
        }
    }
}

/// The files of one subject.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The directory's CA and per-subject files.
#[derive(Clone, Debug)]
pub struct LocalPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub issued: Vec<(String, Issued)>,
}

impl LocalPki {
    /// The [`TlsConfig`] of one subject: its own certificate for both roles, the local CA for
    /// both directions, mutual TLS when `mutual`.
    pub fn config(&self, name: &str, mutual: bool) -> Result<TlsConfig, TlsError> {
        let issued = self
            .issued
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
            .ok_or_else(|| TlsError::Generate(format!("no certificate for {name}")))?;
        TlsConfig::from_files(&self.ca, &issued.cert, &issued.key, mutual)
    }
}

fn gen_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(e.to_string())
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Read {
        var: "tls dir",
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(&tmp)
            .map_err(io)?;
        file.write_all(contents.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        let _ = private;
        std::fs::write(&tmp, contents).map_err(io)?;
    }
    // Atomic: a crash never leaves half a key behind.
    std::fs::rename(&tmp, path).map_err(io)
}

fn validity(params: &mut CertificateParams) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let (y, m, d) = (now.year(), now.month() as u8, now.day().min(28) as u8);
    params.not_before = rcgen::date_time_ymd(y - 1, m, d);
    params.not_after = rcgen::date_time_ymd(y + VALID_YEARS, m, d);
}

/// Whether the PEM certificate at `path` is usable: parses, chains to `ca_der`'s key, is not
/// near expiry and (when `subject` is given) names exactly its URI and hosts.
fn still_valid(path: &Path, ca_der: Option<&[u8]>, subject: Option<&Subject>) -> bool {
    let Ok(pem) = std::fs::read(path) else {
        return false;
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let renew_at = chrono::Utc::now().timestamp() + RENEW_DAYS * 86_400;
    if cert.validity().not_after.timestamp() < renew_at {
        return false;
    }
    if let Some(ca_der) = ca_der {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
            return false;
        };
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return false;
        }
    }
    if let Some(subject) = subject {
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        let mut names: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some((*u).to_owned()),
                x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    ip_from_bytes(b).map(|ip| ip.to_string())
                }
                _ => None,
            })
            .collect();
        let mut wanted: Vec<String> = subject
            .hosts
            .iter()
            .cloned()
            .chain([subject.uri.clone()])
            .collect();
        names.sort();
        names.dedup();
        wanted.sort();
        wanted.dedup();
        if names != wanted {
            return false;
        }
    }
    true
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Creates (or reuses) the CA and one certificate per subject under `dir`.
pub fn ensure_local_pki(dir: &Path, subjects: &[Subject]) -> Result<LocalPki, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Read {
        var: "tls dir",
        path: dir.to_owned(),
        source,
    })?;
    let ca_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca-key.pem");
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| TlsError::Read {
            var: "tls dir",
            path: p.to_owned(),
            source,
        })
    };

    let reuse_ca = ca_key_path.exists() && still_valid(&ca_path, None, None);
    let mut fresh_ca = false;
    let issuer = if reuse_ca {
        let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(gen_err)?;
        Issuer::from_ca_cert_pem(&read(&ca_path)?, key).map_err(gen_err)?
    } else {
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "MPC-System local CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        write(&ca_key_path, &key.serialize_pem(), true)?;
        write(&ca_path, &cert.pem(), false)?;
        fresh_ca = true;
        Issuer::new(params, key)
    };
    let ca_der = x509_parser::pem::parse_x509_pem(read(&ca_path)?.as_bytes())
        .map_err(gen_err)?
        .1
        .contents;

    let mut issued = Vec::new();
    for subject in subjects {
        let cert_path = dir.join(format!("{}.pem", subject.name));
        let key_path = dir.join(format!("{}-key.pem", subject.name));
        let files = Issued {
            cert: cert_path.clone(),
            key: key_path.clone(),
        };
        if !fresh_ca && key_path.exists() && still_valid(&cert_path, Some(&ca_der), Some(subject)) {
            issued.push((subject.name.clone(), files));
            continue;
        }
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, subject.name.clone());
        for host in &subject.hosts {
            params.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.clone().try_into().map_err(gen_err)?),
            });
        }
        params.subject_alt_names.push(SanType::URI(
            subject.uri.clone().try_into().map_err(gen_err)?,
        ));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params);
        let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
        write(&key_path, &key.serialize_pem(), true)?;
        write(&cert_path, &cert.pem(), false)?;
        issued.push((subject.name.clone(), files));
    }
    Ok(LocalPki {
        dir: dir.to_owned(),
        ca: ca_path,
        issued,
    })
}
