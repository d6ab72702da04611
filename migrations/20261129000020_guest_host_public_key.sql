-- Each guest host's public key (base64 X25519), as its latest host heartbeat reported it: the
-- taskmanager seals the passwords of a `prepare` for it. Null for a host that has not reported
-- one; such a host gets no instance whose create carries a password.
ALTER TABLE guest_hosts ADD COLUMN public_key text;
