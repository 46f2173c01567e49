//! Encrypted blobs, as the vault seals them: the core never sees what is inside.

/// An encrypted blob and the version of the key that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: u32,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(v{}, {} bytes)", self.key_version, self.bytes.len())
    }
}
