//! The caps on what a client may send, in one place so docs/api.md and the OpenAPI document
//! (`crates/api/openapi.json`) can name the same numbers. Trove's own caps where Trove has them.

/// Largest request body, in bytes. A bigger one is 413 `overLimit` before it is parsed.
pub const BODY_BYTES: usize = 64 * 1024;

/// Instance and backup names: Trove's `non_empty_string` (`String(255)` columns).
pub const NAME_CHARS: usize = 255;

/// Backup descriptions: Trove's `backups.description` is `String(512)`.
pub const DESCRIPTION_CHARS: usize = 512;

/// Database and user names: PostgreSQL's identifier limit (NAMEDATALEN - 1), as Trove's
/// PostgreSQL models cap them.
pub const PG_IDENTIFIER_BYTES: usize = 63;

/// Passwords: long enough to be worth guessing, short enough to hash cheaply.
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// References to catalogue entries (flavors, datastores, versions), ids and hrefs, path segments
/// and query values.
pub const REF_CHARS: usize = 255;

/// The `X-Auth-Token` header; a longer one cannot be in the token file.
pub const TOKEN_BYTES: usize = 1024;

/// The `Host` header, which links in responses are built from.
pub const HOST_BYTES: usize = 255;

/// Databases and users in one create, databases granted to one user, allowed CIDRs of one
/// instance.
pub const DATABASES: usize = 100;
pub const USERS: usize = 100;
pub const DATABASES_PER_USER: usize = 100;
pub const ALLOWED_CIDRS: usize = trove_common::access::MAX_ALLOWED_CIDRS;
