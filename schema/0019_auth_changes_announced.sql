-- Every change to the authentication state that can end or narrow a caller's access is
-- announced at commit on `eventra_auth_changed`, so that each API instance forgets what it
-- remembers of that session (`s:<session id>`) or user (`u:<user id>`) (ADR 0031). Opening
-- and refreshing a session narrow nothing and announce nothing.
CREATE FUNCTION announce_auth_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    IF TG_TABLE_NAME = 'auth_sessions' THEN
        PERFORM pg_notify('eventra_auth_changed', 's:' || changed.session_id::text);
    ELSE
        PERFORM pg_notify('eventra_auth_changed', 'u:' || changed.user_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER auth_session_revoked
    AFTER UPDATE ON auth_sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
          OR NEW.expires_at < OLD.expires_at)
    EXECUTE FUNCTION announce_auth_change();

CREATE TRIGGER auth_session_deleted
    AFTER DELETE ON auth_sessions
    FOR EACH ROW EXECUTE FUNCTION announce_auth_change();

CREATE TRIGGER auth_principal_changed
    AFTER UPDATE ON auth_principals
    FOR EACH ROW
    WHEN (OLD.role IS DISTINCT FROM NEW.role
          OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.platform_admin IS DISTINCT FROM NEW.platform_admin
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id)
    EXECUTE FUNCTION announce_auth_change();

CREATE TRIGGER auth_principal_deleted
    AFTER DELETE ON auth_principals
    FOR EACH ROW EXECUTE FUNCTION announce_auth_change();
