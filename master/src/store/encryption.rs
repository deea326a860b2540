//! Encryption at rest: values of the resources an `EncryptionConfiguration`
//! (apiserver.config.k8s.io/v1, kube-apiserver's `--encryption-provider-config`) names are
//! encrypted before they reach the store and decrypted as they are read, so neither the
//! embedded store's file nor etcd holds a Secret in plain text, while the API serves them
//! unchanged.
//!
//! As kube-apiserver's `storage/value/encrypt`: the first provider of a resource writes,
//! every provider reads what carries its prefix (`k8s:enc:aescbc:v1:<key name>:` then a
//! random 16-byte IV and AES-CBC with PKCS#7 padding; `k8s:enc:secretbox:v1:<key name>:`
//! then a random 24-byte nonce and XSalsa20-Poly1305), and `identity` writes plain text and
//! reads anything without a prefix (data from before encryption was turned on). The keys of
//! a provider are tried in order when reading; the first one writes.

use std::path::Path;
use std::sync::Arc;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use crypto_secretbox::aead::{Aead, KeyInit};
use futures::StreamExt;
use rand::RngCore;
use serde::Deserialize;

use super::{KeyValue, ListResult, Revision, Store, StoreError, WatchStream};

/// Why an encryption configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Configuration {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResourceConfiguration {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProviderConfiguration {
    aescbc: Option<KeysConfiguration>,
    secretbox: Option<KeysConfiguration>,
    identity: Option<serde_yaml::Value>,
    aesgcm: Option<serde_yaml::Value>,
    kms: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysConfiguration {
    #[serde(default)]
    keys: Vec<KeyConfiguration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfiguration {
    name: String,
    secret: String,
}

/// One provider with its keys (name, bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Provider {
    AesCbc(Vec<(String, Vec<u8>)>),
    Secretbox(Vec<(String, Vec<u8>)>),
    Identity,
}

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes192CbcEnc = cbc::Encryptor<aes::Aes192>;
type Aes192CbcDec = cbc::Decryptor<aes::Aes192>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

impl Provider {
    fn prefix(&self, key_name: &str) -> String {
        match self {
            Provider::AesCbc(_) => format!("k8s:enc:aescbc:v1:{key_name}:"),
            Provider::Secretbox(_) => format!("k8s:enc:secretbox:v1:{key_name}:"),
            Provider::Identity => String::new(),
        }
    }

    fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let (name, key) = match self {
            Provider::Identity => return Ok(plain.to_vec()),
            Provider::AesCbc(keys) | Provider::Secretbox(keys) => {
                keys.first().ok_or("a provider without keys")?
            }
        };
        let mut out = self.prefix(name).into_bytes();
        match self {
            Provider::AesCbc(_) => {
                let mut iv = [0u8; 16];
                rand::rng().fill_bytes(&mut iv);
                out.extend_from_slice(&iv);
                let sealed = match key.len() {
                    16 => Aes128CbcEnc::new_from_slices(key, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    24 => Aes192CbcEnc::new_from_slices(key, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    _ => Aes256CbcEnc::new_from_slices(key, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                }
                .map_err(|e| e.to_string())?;
                out.extend_from_slice(&sealed);
            }
            Provider::Secretbox(_) => {
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(key)
                    .map_err(|e| e.to_string())?;
                let mut nonce = [0u8; 24];
                rand::rng().fill_bytes(&mut nonce);
                let sealed = cipher
                    .encrypt(&nonce.into(), plain)
                    .map_err(|e| e.to_string())?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            Provider::Identity => {}
        }
        Ok(out)
    }

    /// The plain text of `stored` if this provider wrote it (`None`: not its prefix).
    fn decrypt(&self, stored: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let keys = match self {
            Provider::Identity => {
                return (!stored.starts_with(b"k8s:enc:")).then(|| Ok(stored.to_vec()));
            }
            Provider::AesCbc(keys) | Provider::Secretbox(keys) => keys,
        };
        for (name, key) in keys {
            let Some(data) = stored.strip_prefix(self.prefix(name).as_bytes()) else {
                continue;
            };
            let opened = match self {
                Provider::AesCbc(_) if data.len() >= 16 => {
                    let (iv, sealed) = data.split_at(16);
                    match key.len() {
                        16 => Aes128CbcDec::new_from_slices(key, iv)
                            .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                        24 => Aes192CbcDec::new_from_slices(key, iv)
                            .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                        _ => Aes256CbcDec::new_from_slices(key, iv)
                            .map(|c| c.decrypt_padded_vec_mut::<Pkcs7>(sealed)),
                    }
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|_| "invalid padding on input".to_owned()))
                }
                Provider::Secretbox(_) if data.len() >= 24 => {
                    let (nonce, sealed) = data.split_at(24);
                    crypto_secretbox::XSalsa20Poly1305::new_from_slice(key)
                        .map_err(|e| e.to_string())
                        .and_then(|c| {
                            c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                                .map_err(|_| {
                                    "output array was not large enough for encryption".to_owned()
                                })
                        })
                }
                _ => Err("the data is too short".to_owned()),
            };
            return Some(opened);
        }
        None
    }
}

/// The providers of each configured resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encryption {
    /// (resource, e.g. `secrets` or `configmaps`; its providers, the writer first).
    resources: Vec<(String, Vec<Provider>)>,
}

impl Encryption {
    /// Read an `EncryptionConfiguration` file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Parse an `EncryptionConfiguration`, checking it as kube-apiserver does.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Configuration = serde_yaml::from_str(text).map_err(|e| {
            ConfigError(format!(
                "error decoding encryption provider configuration: {e}"
            ))
        })?;
        if config.kind.as_deref() != Some("EncryptionConfiguration")
            || !matches!(
                config.api_version.as_deref(),
                Some("apiserver.config.k8s.io/v1" | "apiserver.config.k8s.io/v1beta1")
            )
        {
            return Err(ConfigError(
                "the encryption provider configuration must be kind EncryptionConfiguration of apiserver.config.k8s.io/v1".into(),
            ));
        }
        if config.resources.is_empty() {
            return Err(ConfigError(
                "resources: Required value: resources is a required field".into(),
            ));
        }
        let mut resources = Vec::new();
        for (i, entry) in config.resources.iter().enumerate() {
            if entry.resources.is_empty() {
                return Err(ConfigError(format!(
                    "resources[{i}].resources: Required value: resources is a required field"
                )));
            }
            if entry.providers.is_empty() {
                return Err(ConfigError(format!(
                    "resources[{i}].providers: Required value: providers is a required field"
                )));
            }
            let providers = entry
                .providers
                .iter()
                .enumerate()
                .map(|(j, p)| provider(p, &format!("resources[{i}].providers[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            for resource in &entry.resources {
                // `secrets`, `configmaps`; a group's resources as `deployments.apps`.
                let resource = resource.split('.').next().unwrap_or(resource).to_owned();
                resources.push((resource, providers.clone()));
            }
        }
        Ok(Self { resources })
    }

    /// The providers of the resource a store key belongs to (`/registry/secrets/...`).
    fn providers(&self, key: &str) -> Option<&[Provider]> {
        let plural = key.strip_prefix("/registry/")?.split('/').next()?;
        self.resources
            .iter()
            .find(|(r, _)| r == plural || r == "*")
            .map(|(_, p)| p.as_slice())
    }

    /// The bytes to store for `value` at `key`.
    pub fn encrypt(&self, key: &str, value: Bytes) -> Result<Bytes, StoreError> {
        match self.providers(key).and_then(<[Provider]>::first) {
            None | Some(Provider::Identity) => Ok(value),
            Some(provider) => provider
                .encrypt(&value)
                .map(Bytes::from)
                .map_err(|e| StoreError::Backend(format!("encrypting {key}: {e}"))),
        }
    }

    /// The plain bytes of what is stored at `key`.
    pub fn decrypt(&self, key: &str, stored: Bytes) -> Result<Bytes, StoreError> {
        let Some(providers) = self.providers(key) else {
            return Ok(stored);
        };
        for provider in providers {
            if let Some(opened) = provider.decrypt(&stored) {
                return opened
                    .map(Bytes::from)
                    .map_err(|e| StoreError::Backend(format!("decrypting {key}: {e}")));
            }
        }
        if !stored.starts_with(b"k8s:enc:") {
            // Written before encryption was turned on; read as it is, rewritten on update.
            return Ok(stored);
        }
        Err(StoreError::Backend(format!(
            "decrypting {key}: no provider of the encryption configuration can read it"
        )))
    }

    fn open(&self, mut kv: KeyValue) -> Result<KeyValue, StoreError> {
        kv.value = self.decrypt(&kv.key, kv.value)?;
        Ok(kv)
    }
}

fn provider(p: &ProviderConfiguration, path: &str) -> Result<Provider, ConfigError> {
    let set = [
        p.aescbc.is_some(),
        p.secretbox.is_some(),
        p.identity.is_some(),
        p.aesgcm.is_some(),
        p.kms.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set == 0 {
        return Err(ConfigError(format!(
            "{path}: Invalid value: \"providers\": provider does not contain any of the expected providers: AESCBC, Secretbox, Identity"
        )));
    }
    if set > 1 {
        return Err(ConfigError(format!(
            "{path}: Invalid value: \"providers\": more than one provider specified in a single element, should split into different list elements"
        )));
    }
    if p.aesgcm.is_some() || p.kms.is_some() {
        return Err(ConfigError(format!(
            "{path}: only the aescbc, secretbox and identity providers are supported"
        )));
    }
    if p.identity.is_some() {
        return Ok(Provider::Identity);
    }
    let (kind, keys_config, sizes): (&str, &KeysConfiguration, &[usize]) =
        match (&p.aescbc, &p.secretbox) {
            (Some(keys), _) => ("aescbc", keys, &[16, 24, 32]),
            (_, Some(keys)) => ("secretbox", keys, &[32]),
            _ => return Ok(Provider::Identity),
        };
    if keys_config.keys.is_empty() {
        return Err(ConfigError(format!(
            "{path}.{kind}.keys: Required value: keys is a required field"
        )));
    }
    let mut keys = Vec::new();
    for (k, key) in keys_config.keys.iter().enumerate() {
        let field = format!("{path}.{kind}.keys[{k}]");
        if key.name.is_empty() || key.name.contains(':') {
            return Err(ConfigError(format!(
                "{field}.name: Invalid value: {:?}: key name must be non-empty and may not contain ':'",
                key.name
            )));
        }
        if keys
            .iter()
            .any(|(name, _): &(String, Vec<u8>)| *name == key.name)
        {
            return Err(ConfigError(format!(
                "{field}.name: Duplicate value: {:?}",
                key.name
            )));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|e| ConfigError(format!("{field}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded: {e}")))?;
        if !sizes.contains(&secret.len()) {
            let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
            return Err(ConfigError(format!(
                "{field}.secret: Invalid value: \"REDACTED\": secret is not of the expected length, got {}, expected one of [{}]",
                secret.len(),
                sizes.join(" ")
            )));
        }
        keys.push((key.name.clone(), secret));
    }
    Ok(match kind {
        "aescbc" => Provider::AesCbc(keys),
        _ => Provider::Secretbox(keys),
    })
}

/// A store that encrypts the configured resources' values on their way in and decrypts them
/// on their way out.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    encryption: Arc<Encryption>,
}

impl EncryptedStore {
    /// `inner` with `encryption`.
    pub fn new(inner: Arc<dyn Store>, encryption: Encryption) -> Self {
        Self {
            inner,
            encryption: Arc::new(encryption),
        }
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self.inner.get(key).await? {
            Some(kv) => self.encryption.open(kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let listed = self.inner.list(prefix).await?;
        Ok(ListResult {
            items: listed
                .items
                .into_iter()
                .map(|kv| self.encryption.open(kv))
                .collect::<Result<_, _>>()?,
            revision: listed.revision,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let stored = self.encryption.encrypt(key, value.clone())?;
        let mut kv = self.inner.create(key, stored).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let stored = self.encryption.encrypt(key, value.clone())?;
        let mut kv = self.inner.update(key, stored, expected).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let kv = self.inner.delete(key, expected).await?;
        self.encryption.open(kv)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let encryption = self.encryption.clone();
        let events = self.inner.watch(prefix, after).await?;
        Ok(Box::pin(events.map(move |event| {
            let mut event = event?;
            event.kv = encryption.open(event.kv)?;
            Ok(event)
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY32: &str = "c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaywgeWVzIGE="; // 32 bytes
    const KEY16: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng=="; // 16 bytes

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        )
    }

    #[test]
    fn each_provider_reads_what_it_wrote_and_the_store_never_sees_plain_text() {
        for first in [
            format!("  - aescbc: {{keys: [{{name: k1, secret: {KEY32}}}]}}\n"),
            format!("  - aescbc: {{keys: [{{name: k1, secret: {KEY16}}}]}}\n"),
            format!("  - secretbox: {{keys: [{{name: k1, secret: {KEY32}}}]}}\n"),
        ] {
            let encryption =
                Encryption::parse(&config(&format!("{first}  - identity: {{}}\n"))).unwrap();
            let plain = Bytes::from_static(br#"{"data":{"password":"aHVudGVyMg=="}}"#);
            let stored = encryption
                .encrypt("/registry/secrets/default/db", plain.clone())
                .unwrap();
            assert!(stored.starts_with(b"k8s:enc:"), "{first}");
            assert!(!stored.windows(12).any(|w| w == b"aHVudGVyMg=="));
            assert_eq!(
                encryption
                    .decrypt("/registry/secrets/default/db", stored.clone())
                    .unwrap(),
                plain
            );
            // Other resources are left alone; data from before encryption is still read.
            let map = Bytes::from_static(b"{}");
            assert_eq!(
                encryption
                    .encrypt("/registry/configmaps/default/x", map.clone())
                    .unwrap(),
                map
            );
            assert_eq!(
                encryption
                    .decrypt("/registry/secrets/default/old", map.clone())
                    .unwrap(),
                map
            );
            // Tampered data is an error, never a panic.
            let mut tampered = stored.to_vec();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            let _ = encryption.decrypt("/registry/secrets/default/db", Bytes::from(tampered));
            assert!(
                encryption
                    .decrypt(
                        "/registry/secrets/default/db",
                        Bytes::from_static(b"k8s:enc:aescbc:v1:k1:x")
                    )
                    .is_err()
            );
        }
    }

    #[test]
    fn bad_configurations_are_refused_with_kubernetes_words() {
        let short = Encryption::parse(&config(
            "  - aescbc: {keys: [{name: k1, secret: c2hvcnQ=}]}\n",
        ));
        assert_eq!(
            short.unwrap_err().0,
            "resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16 24 32]"
        );
        assert!(
            Encryption::parse(&config("  - aescbc: {keys: [{name: k1, secret: '!!'}]}\n")).is_err()
        );
        assert!(Encryption::parse(&config("  - aescbc: {keys: []}\n")).is_err());
        assert!(
            Encryption::parse(&config(&format!(
                "  - secretbox: {{keys: [{{name: k1, secret: {KEY16}}}]}}\n"
            )))
            .is_err()
        );
        assert!(
            Encryption::parse(&config(&format!(
                "  - identity: {{}}\n    aescbc: {{keys: [{{name: k, secret: {KEY32}}}]}}\n"
            )))
            .is_err()
        );
        assert!(Encryption::parse("kind: Something\n").is_err());
        assert!(Encryption::parse("not: [yaml").is_err());
    }
}
