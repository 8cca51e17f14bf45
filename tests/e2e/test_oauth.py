#!/usr/bin/env python3
"""Black-box OAuth login suite (Google OpenID Connect and GitHub OAuth 2)
against the running stack, through the gateway, with the local providers of
tests/e2e/standins/ started here on the ports services/env.d/oauth.sh
configured (OAUTH_OIDC_PORT, OAUTH_GITHUB_PORT).

Every flow is driven with urllib without following redirects, as a browser
would: GET /v1/auth/oauth/<p>/start -> provider /authorize -> our callback.
The test picks the provider-side account with extra test_* parameters on the
provider's /authorize URL (see the stand-ins). Refused flows are checked to
have created nothing (no user, no identity, no refresh cookie); the database
is read through the stack's admin connection (STACK_PG_ADMIN).
"""
import base64
import hashlib
import http.cookies
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client as c  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
OIDC_PORT = int(os.environ.get("OAUTH_OIDC_PORT", "24590"))
GH_PORT = int(os.environ.get("OAUTH_GITHUB_PORT", "24591"))
SUCCESS = os.environ.get("AUTH_OAUTH_SUCCESS_URL", "/signed-in")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=c.ctx))


def get(url, cookie=None, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, method=method, data=body)
    if cookie:
        req.add_header("Cookie", cookie)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with OPENER.open(req, timeout=30) as r:
            return c.Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return c.Resp(e.code, e.headers, e.read())


def set_cookies(r):
    """{name: (value, attributes-lowercased-list)} of every Set-Cookie line."""
    out = {}
    for line in r.headers.get_all("Set-Cookie") or []:
        parts = [p.strip() for p in line.split(";")]
        name, _, value = parts[0].partition("=")
        out[name] = (value, [p.lower() for p in parts[1:]])
    return out


def psql(sql, *args):
    """Runs one parameter-free query as the stack's superuser; returns rows."""
    exe = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    for a in args:  # values are test-made (hex, emails); quote defensively
        sql = sql.replace("%s", "'" + str(a).replace("'", "''") + "'", 1)
    out = subprocess.run([exe, "-X", "-At", "-v", "ON_ERROR_STOP=1",
                          os.environ["STACK_PG_ADMIN"], "-c", sql],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def users_with_email(email):
    return int(psql("SELECT count(*) FROM auth.users WHERE email = %s", email.lower())[0][0])


def identities(provider, subject):
    return psql("SELECT user_id::text FROM auth.oauth_identities "
                "WHERE provider = %s AND subject = %s", provider, subject)


# ----------------------------------------------------------- stand-ins
def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_standin(script, port, extra_env=None):
    if port_open(port):
        raise RuntimeError("port %d already in use; stop the process holding it" % port)
    env = dict(os.environ)
    env.update(extra_env or {})
    p = subprocess.Popen(["node", os.path.join(HERE, "standins", script), str(port)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("%s exited: %s" % (script, p.stdout.read()[-500:]))
        if port_open(port):
            return p
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("%s did not start on %d" % (script, port))


# ----------------------------------------------------------- flow steps
def start(provider):
    r = get(c.GW + "/v1/auth/oauth/%s/start" % provider)
    cookies = set_cookies(r)
    oc = cookies.get("__Host-oauth")
    return r, r.headers.get("Location", ""), (oc[0] if oc else None), (oc[1] if oc else [])


def params(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def with_params(url, **extra):
    parts = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(parts.query)
    q = [(k, v) for k, v in q if k not in extra] + [(k, v) for k, v in extra.items()]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def authorize(location, **test):
    """Visits the provider's authorize URL; returns the callback URL it redirects to."""
    r = get(with_params(location, **test))
    if r.status != 302:
        raise RuntimeError("provider authorize answered %d: %r" % (r.status, r.body[:200]))
    return r.headers["Location"]


def callback(url, cookie):
    return get(url, cookie=("__Host-oauth=" + cookie) if cookie else None)


def no_token_in(location):
    low = (location or "").lower()
    return not any(t in low for t in ("rt_", "eyj", "access_token", "refresh_token", "id_token",
                                      "token="))


def refused_cleanly(name, r, email, status=(400, 401)):
    ok = r.status in status and c.is_problem(r, r.status)
    c.check(name + ": refused with a problem", ok, "%d %r" % (r.status, r.body[:200]))
    c.check(name + ": no refresh cookie", "__Host-refresh" not in set_cookies(r) or
            set_cookies(r)["__Host-refresh"][0] == "")
    c.check(name + ": no token in any Location", no_token_in(r.headers.get("Location")))
    if email:
        c.check(name + ": no user created", users_with_email(email) == 0)


ADMIN = []


def audit_actions(uid, need=(), timeout_s=10.0):
    """Actions of the user's audit rows (auth.audit events reach credit-svc's
    audit log asynchronously); waits until every action in need is there."""
    if not ADMIN:
        ADMIN.append(c.admin_token())
    deadline = time.monotonic() + timeout_s
    while True:
        rows = c.audit_rows(ADMIN[0], uid) or []
        acts = [(r.get("action"), r.get("status"), r.get("detail") or {}) for r in rows]
        if all(any(a[0] == n for a in acts) for n in need) or time.monotonic() > deadline:
            return acts
        time.sleep(0.2)


def me_from_refresh(refresh):
    r = c.call("POST", "/v1/auth/refresh",
               headers={"Cookie": "__Host-refresh=" + refresh,
                        "Origin": c.GW, "X-Requested-With": "XMLHttpRequest"})
    if r.status != 200:
        return None, None
    tok = r.json()["access_token"]
    return c.call("GET", "/v1/me", token=tok).json(), tok


def full_flow(provider, **test):
    r, loc, ck, _ = start(provider)
    if r.status != 302 or not ck:
        raise RuntimeError("start answered %d" % r.status)
    return callback(authorize(loc, **test), ck)


# ----------------------------------------------------------- cases
def case_start_shape():
    for provider, base, scope in (
            ("google", "http://127.0.0.1:%d/authorize" % OIDC_PORT, "openid email profile"),
            ("github", "http://127.0.0.1:%d/login/oauth/authorize" % GH_PORT,
             "read:user user:email")):
        r, loc, ck, attrs = start(provider)
        p = params(loc)
        c.check("%s start: 302 to the provider's authorize endpoint" % provider,
                r.status == 302 and loc.startswith(base + "?"), "%d %s" % (r.status, loc[:120]))
        c.check("%s start: code flow, client id, redirect uri, scope" % provider,
                p.get("response_type") == "code" and p.get("client_id")
                and p.get("redirect_uri", "").endswith("/v1/auth/oauth/%s/callback" % provider)
                and p.get("scope") == scope, p)
        c.check("%s start: 256-bit state and PKCE S256 challenge" % provider,
                len(p.get("state", "")) == 43 and len(p.get("code_challenge", "")) == 43
                and p.get("code_challenge_method") == "S256", p)
        c.check("%s start: nonce %s" % (provider, "present" if provider == "google" else "absent"),
                (len(p.get("nonce", "")) == 43) if provider == "google" else "nonce" not in p)
        c.check("%s start: __Host-oauth cookie HttpOnly, Secure, SameSite=Lax, Path=/, no Domain"
                % provider,
                ck is not None and len(ck) == 43 and "httponly" in attrs and "secure" in attrs
                and "samesite=lax" in attrs and "path=/" in attrs
                and not any(a.startswith("domain") for a in attrs), attrs)
        c.check("%s start: state is not the cookie value" % provider, p.get("state") != ck)
    r = get(c.GW + "/v1/auth/oauth/facebook/start")
    c.check("unknown provider -> 404", r.status == 404, r.status)
    r1, loc1, _, _ = start("google")
    r2, loc2, _, _ = start("google")
    c.check("each start has a fresh state and challenge",
            params(loc1)["state"] != params(loc2)["state"]
            and params(loc1)["code_challenge"] != params(loc2)["code_challenge"])


def case_happy(provider):
    email = c.new_email()
    if provider == "google":
        sub = "g-" + secrets.token_hex(8)
        test = {"test_sub": sub, "test_email": email, "test_email_verified": "true"}
    else:
        sub = str(secrets.randbelow(10 ** 9) + 10 ** 6)
        test = {"test_id": sub, "test_email": email, "test_verified": "true"}
    r = full_flow(provider, **test)
    cookies = set_cookies(r)
    rc = cookies.get("__Host-refresh")
    c.check("%s happy: 302 to the configured success page" % provider,
            r.status == 302 and r.headers.get("Location") == SUCCESS,
            "%d %s %r" % (r.status, r.headers.get("Location"), r.body[:200]))
    c.check("%s happy: no token in the Location" % provider, no_token_in(r.headers.get("Location")))
    c.check("%s happy: __Host-refresh set like login (HttpOnly, Secure, SameSite=Strict, Path=/)"
            % provider,
            rc is not None and rc[0].startswith("rt_") and "httponly" in rc[1]
            and "secure" in rc[1] and "samesite=strict" in rc[1] and "path=/" in rc[1], cookies)
    if "__Host-oauth" in cookies:
        c.check("%s happy: __Host-oauth cleared" % provider, cookies["__Host-oauth"][0] == "")
    c.check("%s happy: body carries no token" % provider,
            b"rt_" not in r.body and b"eyJ" not in r.body)
    me, tok = me_from_refresh(rc[0]) if rc else (None, None)
    c.check("%s happy: refresh cookie works and /v1/me is the new user" % provider,
            me is not None and me.get("email") == email.lower() and me.get("role") == "user", me)
    rows = psql("SELECT id::text, (password_hash IS NULL) FROM auth.users WHERE email = %s",
                email.lower())
    c.check("%s happy: one user, without a password" % provider,
            len(rows) == 1 and rows[0][1] == "t", rows)
    ids = identities(provider, sub)
    c.check("%s happy: identity stored (provider, subject) -> user" % provider,
            len(ids) == 1 and rows and ids[0][0] == rows[0][0], ids)
    if me is not None:
        _, _, sr = c.signup()
        bal = c.call("GET", "/v1/credits", token=tok)
        ref = c.call("GET", "/v1/credits", token=sr.json()["access_token"]) if sr.status == 201 \
            else None
        c.check("%s happy: credit account opened like a signup" % provider,
                bal is not None and bal.status == 200 and ref is not None and ref.status == 200
                and bal.json().get("balance") == ref.json().get("balance"),
                "%s %s" % (bal and bal.status, ref and ref.status))
    if me is not None:
        acts = audit_actions(me["id"], ("signup", "oauth_linked", "oauth_login"))
        c.check("%s happy: audited signup (via provider), oauth_linked, oauth_login" % provider,
                any(a[0] == "signup" and a[2].get("via") == provider for a in acts)
                and any(a[0] == "oauth_linked" and a[2].get("provider") == provider for a in acts)
                and any(a[0] == "oauth_login" and a[1] == "ok" for a in acts), acts)
    # the same provider account again: same user, nothing new
    r2 = full_flow(provider, **test)
    c.check("%s again: signs in the same user, no new row" % provider,
            r2.status == 302 and users_with_email(email) == 1 and len(identities(provider, sub)) == 1,
            r2.status)


def case_state_failures():
    # missing state
    email = c.new_email()
    r, loc, ck, _ = start("github")
    cb = authorize(loc, test_email=email, test_id=str(secrets.randbelow(10 ** 9) + 10 ** 6))
    q = params(cb)
    base = cb.split("?")[0]
    refused_cleanly("state missing", callback(base + "?code=" + q["code"], ck), email)
    # (the code and state above are unused: the real state still works once)
    r_ok = callback(cb, ck)
    c.check("state missing did not burn the real state", r_ok.status == 302, r_ok.status)
    refused_cleanly("state reused (replayed callback)", callback(cb, ck), None)

    # mismatched state: a well-formed state nobody issued
    email = c.new_email()
    r, loc, ck, _ = start("google")
    cb = authorize(loc, test_email=email, test_email_verified="true",
                   test_sub="g-" + secrets.token_hex(8))
    forged = with_params(cb, state=base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())
    refused_cleanly("state mismatched", callback(forged, ck), email)

    # state bound to another browser: the attacker's cookie / no cookie
    email = c.new_email()
    r, loc, ck, _ = start("google")
    _, _, other_ck, _ = start("google")
    cb = authorize(loc, test_email=email, test_email_verified="true",
                   test_sub="g-" + secrets.token_hex(8))
    refused_cleanly("state with another browser's cookie", callback(cb, other_ck), email)
    r, loc, ck, _ = start("google")
    cb = authorize(loc, test_email=email, test_email_verified="true",
                   test_sub="g-" + secrets.token_hex(8))
    refused_cleanly("state without the binding cookie", callback(cb, None), email)
    refused_cleanly("state is single use even after a refusal", callback(cb, ck), email)

    # state of one provider presented to the other's callback
    email = c.new_email()
    r, loc, ck, _ = start("google")
    cb = authorize(loc, test_email=email, test_email_verified="true",
                   test_sub="g-" + secrets.token_hex(8))
    cross = cb.replace("/oauth/google/callback", "/oauth/github/callback")
    refused_cleanly("google state at the github callback", callback(cross, ck), email)

    # expired state (aged in the database: the TTL is minutes)
    email = c.new_email()
    r, loc, ck, _ = start("github")
    state = params(loc)["state"]
    cb = authorize(loc, test_email=email, test_id=str(secrets.randbelow(10 ** 9) + 10 ** 6))
    h = hashlib.sha256(state.encode()).hexdigest()
    n = psql("WITH u AS (UPDATE auth.oauth_states SET expires_at = now() - interval '1 second' "
             "WHERE state_hash = %s RETURNING 1) SELECT count(*) FROM u", h)
    c.check("expired: state row aged", n == [["1"]], n)
    refused_cleanly("state expired", callback(cb, ck), email)

    # provider reported an error (user denied consent)
    email = c.new_email()
    r, loc, ck, _ = start("google")
    cb = authorize(loc, test_email=email, test_email_verified="true")
    denied = with_params(cb, error="access_denied")
    refused_cleanly("provider error=access_denied", callback(denied, ck), email)


def case_pkce_and_nonce():
    other = base64.urlsafe_b64encode(hashlib.sha256(os.urandom(32)).digest()).rstrip(b"=").decode()
    for provider in ("github", "google"):
        email = c.new_email()
        r, loc, ck, _ = start(provider)
        test = ({"test_id": str(secrets.randbelow(10 ** 9) + 10 ** 6), "test_email": email}
                if provider == "github" else
                {"test_sub": "g-" + secrets.token_hex(8), "test_email": email,
                 "test_email_verified": "true"})
        # the challenge the provider sees is not ours: our verifier must fail
        cb = authorize(loc, code_challenge=other, **test)
        refused_cleanly("%s PKCE verifier mismatch" % provider, callback(cb, ck), email)

    email = c.new_email()
    sub = "g-" + secrets.token_hex(8)
    r, loc, ck, _ = start("google")
    cb = authorize(loc, nonce=base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(),
                   test_sub=sub, test_email=email, test_email_verified="true")
    refused_cleanly("google nonce mismatch", callback(cb, ck), email)
    c.check("google nonce mismatch: no identity", identities("google", sub) == [])
    for name, extra in (("wrong iss", {"test_iss": "https://accounts.evil.example"}),
                        ("wrong aud", {"test_aud": "someone-elses-client"}),
                        ("expired id_token", {"test_exp": "-3600"}),
                        ("unknown kid", {"test_kid": "not-in-jwks"})):
        email = c.new_email()
        r, loc, ck, _ = start("google")
        cb = authorize(loc, test_sub="g-" + secrets.token_hex(8), test_email=email,
                       test_email_verified="true", **extra)
        refused_cleanly("google id_token %s" % name, callback(cb, ck), email)


def case_linking():
    # unverified email never links to (or takes over) an existing account
    for provider in ("google", "github"):
        email, password, r = c.signup()
        c.check("%s link setup: password user" % provider, r.status == 201, r.status)
        uid = r.json()["user"]["id"] if r.status == 201 else None
        if provider == "google":
            sub = "g-" + secrets.token_hex(8)
            test = {"test_sub": sub, "test_email": email, "test_email_verified": "false"}
        else:
            sub = str(secrets.randbelow(10 ** 9) + 10 ** 6)
            test = {"test_id": sub, "test_email": email, "test_verified": "false"}
        rr = full_flow(provider, **test)
        refused_cleanly("%s unverified email of an existing account" % provider, rr, None)
        c.check("%s unverified: no identity linked" % provider, identities(provider, sub) == [])
        c.check("%s unverified: account unchanged (password still works)" % provider,
                c.call("POST", "/v1/auth/login", {"email": email, "password": password}).status
                == 200)
        c.check("%s unverified: still exactly one user" % provider, users_with_email(email) == 1)
        # verified: links to the same account
        test["test_email_verified" if provider == "google" else "test_verified"] = "true"
        rr = full_flow(provider, **test)
        rc = set_cookies(rr).get("__Host-refresh")
        me, _ = me_from_refresh(rc[0]) if rc else (None, None)
        c.check("%s verified email links the existing account" % provider,
                rr.status == 302 and me is not None and me.get("id") == uid, (rr.status, me))
        ids = identities(provider, sub)
        c.check("%s verified: identity points to the existing user" % provider,
                len(ids) == 1 and ids[0][0] == uid, ids)
        c.check("%s verified: no second user" % provider, users_with_email(email) == 1)
        acts = audit_actions(uid, ("oauth_linked",))
        c.check("%s verified: link audited once, no OAuth signup" % provider,
                sum(1 for a in acts if a[0] == "oauth_linked") == 1
                and not any(a[0] == "signup" and a[2].get("via") for a in acts), acts)
        c.check("%s verified: password login still works" % provider,
                c.call("POST", "/v1/auth/login", {"email": email, "password": password}).status
                == 200)
    # unverified and no account: nothing is created (the address is unproven)
    email = c.new_email()
    rr = full_flow("google", test_sub="g-" + secrets.token_hex(8), test_email=email,
                   test_email_verified="false")
    refused_cleanly("google unverified new email", rr, email)


def main():
    procs = []
    try:
        procs.append(start_standin("oidc.mjs", OIDC_PORT))
        procs.append(start_standin("github.mjs", GH_PORT, {
            "GITHUB_CLIENT_ID": os.environ.get("AUTH_GITHUB_CLIENT_ID", ""),
            "GITHUB_CLIENT_SECRET": os.environ.get("AUTH_GITHUB_CLIENT_SECRET", "")}))
        case_start_shape()
        case_happy("google")
        case_happy("github")
        case_state_failures()
        case_pkce_and_nonce()
        case_linking()
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    c.run(main)
