-- 0007_admin_tokens: API tokens that may act on the cluster (issue 16). An
-- admin token (`bickyctl token create --admin`) may drain and undrain nodes
-- through the gateway (POST /api/nodes/:id/drain, /undrain). The gateway only
-- forwards the request with the caller's token: the active registry reads
-- this column itself (live, not revoked, admin) before it acts, so a gateway
-- key alone cannot drain anything (docs/registry.md, "Admin tokens"). A
-- token is made admin at creation and stays so; revoke it to take that away.

ALTER TABLE api_tokens ADD COLUMN admin boolean NOT NULL DEFAULT false;
