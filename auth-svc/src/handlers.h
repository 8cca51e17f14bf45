/* handlers.h - thin ulfius callbacks for the auth-svc routes.
 *
 * Every route is registered behind lc_iauth_callback (priority LC_PRIO_AUTH),
 * so the identity is available through lc_iauth_identity(resp). user_data is
 * the auth_ctx (accounts.h). Each callback parses and validates input, calls
 * one accounts.h function, maps its status and sets the body; none returns
 * U_CALLBACK_ERROR. */
#ifndef AUTH_HANDLERS_H
#define AUTH_HANDLERS_H

#include <ulfius.h>

#include "accounts.h"
#include "lc/iauth.h"

/* Largest accepted JSON body on the auth routes. */
#define AUTH_MAX_JSON 4096
/* Name of the refresh cookie (the __Host- prefix pins Secure, Path=/, no Domain). */
#define AUTH_REFRESH_COOKIE "__Host-refresh"

/* POST /v1/auth/signup {email,password} -> 201 token body. */
int auth_h_signup(const struct _u_request *req, struct _u_response *resp, void *ud);
/* POST /v1/auth/login {email,password} -> 200 token body + refresh cookie. */
int auth_h_login(const struct _u_request *req, struct _u_response *resp, void *ud);
/* POST /v1/auth/refresh {refresh_token} or cookie -> 200 new pair + cookie. */
int auth_h_refresh(const struct _u_request *req, struct _u_response *resp, void *ud);
/* GET /v1/me -> {id,email,role,created_at} of the signed identity. */
int auth_h_me(const struct _u_request *req, struct _u_response *resp, void *ud);
/* POST /v1/auth/logout (session) -> 204; revokes X-Auth-Jti and the refresh family. */
int auth_h_logout(const struct _u_request *req, struct _u_response *resp, void *ud);
/* POST /v1/auth/password {current_password,new_password} (session) -> 200 new pair. */
int auth_h_password(const struct _u_request *req, struct _u_response *resp, void *ud);

/* Admin routes (handlers_admin.c): role admin; API-key identities may not
 * mint or revoke keys and a "read" key may not change anything. */
int auth_h_admin_users(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_user(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_patch_user(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_revoke_tokens(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_key_create(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_key_list(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_admin_key_revoke(const struct _u_request *req, struct _u_response *resp, void *ud);
/* Internal routes for the gateway (role system only, contract B). */
int auth_h_internal_key_verify(const struct _u_request *req, struct _u_response *resp, void *ud);
int auth_h_internal_revocations(const struct _u_request *req, struct _u_response *resp,
                                void *ud);

/* Maps a use-case status to a problem response (logs internal failures once). */
int auth_http_error(struct _u_response *resp, const char *what, int rc, const char *err);

/* Registers the four routes on inst, each behind lc_iauth_callback (ictx)
 * at LC_PRIO_AUTH and its handler (ctx) at LC_PRIO_APP. ctx and ictx must
 * outlive the instance. Returns LC_OK or LC_ERR (a registration failed). */
int auth_handlers_register(struct _u_instance *inst, auth_ctx *ctx, lc_iauth_ctx *ictx);

#endif
