"""The collector's name for program identity, which lives in the
bcc-free package ``dots_identity`` (the policy daemon uses it too)."""

from dots_identity.files import (  # noqa: F401  (re-exported)
    DEFAULT_CACHE_ENTRIES, MAX_HASH_BYTES, FileKey, HashCache, Identity, IdentityError, kernel_dev)
