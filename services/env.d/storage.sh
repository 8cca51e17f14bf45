# storage-svc additions (sourced by services/up while it writes $STATE_DIR/env;
# env_line prints one export line; a later export wins, so GW_MAX_BODY here
# overrides the base line).
#
# STORAGE_MAX_UPLOAD: largest accepted file in bytes (10 MiB). The gateway
# refuses a Content-Length over GW_MAX_BODY with 413 before storage-svc sees
# it (uploads stream through, other routes are buffered up to it), so
# GW_MAX_BODY must leave room for the file plus multipart framing
# (storage-svc allows STORAGE_MAX_UPLOAD + 64 KiB for multipart bodies).
STORAGE_MAX_UPLOAD_BYTES="${STORAGE_MAX_UPLOAD:-10485760}"
env_line STORAGE_MAX_UPLOAD "$STORAGE_MAX_UPLOAD_BYTES"
env_line GW_MAX_BODY "$((STORAGE_MAX_UPLOAD_BYTES + 65536))"
# path-style for s3rver and MinIO; "virtual" for AWS S3 / R2 virtual-hosted URLs.
env_line S3_ADDRESSING "${S3_ADDRESSING:-path}"
env_line S3_TIMEOUT_MS "${S3_TIMEOUT_MS:-30000}"
