#include "io/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"
#include "util/last_error.h"

static void last_error(char *err, size_t errlen, const char *what, const char *file) {
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    /* the reason alone ("No such file or directory") reads better than the packed code
     * ("error:80000002:system library::No such file or directory"); the code when there is no reason */
    const char *reason = !e                    ? NULL
                         : ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e))
                                               : ERR_reason_error_string(e);
    if (reason)
        snprintf(buf, sizeof buf, "%s", reason);
    else if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", buf);
}

static int ctx_new(SSL_CTX **out, const nc_tls_opts *o, int is_server, char *err, size_t errlen) {
    static const nc_tls_opts none = {0};
    if (!o) o = &none;
    *out = NULL;
    if (is_server && (!o->cert_file || !o->key_file)) {
        snprintf(err, errlen, "a TLS server needs a certificate and a key (--cert, --key)");
        return NC_EINVAL;
    }
    if (!is_server && (!o->cert_file) != (!o->key_file)) {
        snprintf(err, errlen, "a client certificate needs its key and the key its certificate");
        return NC_EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        last_error(err, errlen, "cannot create a TLS context", NULL);
        return NC_ETLS;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* No TLS 1.2 renegotiation, either side: one started by a peer costs a full handshake each time (a
     * known denial of service; Node allows 3 per 10 minutes), and without it an SSL_write never has to
     * wait for a read (stream.c relies on that). TLS 1.3 key updates are not renegotiations. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (o->cert_file && SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        last_error(err, errlen, "cannot load the certificate", o->cert_file);
        goto fail;
    }
    if (o->key_file && SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
        last_error(err, errlen, "cannot load the private key", o->key_file);
        goto fail;
    }
    if (o->cert_file && SSL_CTX_check_private_key(ctx) != 1) {
        last_error(err, errlen, "the private key does not match the certificate", o->key_file);
        goto fail;
    }
    if (o->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            last_error(err, errlen, "cannot load the CA file", o->ca_file);
            goto fail;
        }
    } else if (!is_server && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        last_error(err, errlen, "cannot load the system certificate store", NULL);
        goto fail;
    }
    if (is_server) {
        if (o->ca_file) {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
            if (names) SSL_CTX_set_client_CA_list(ctx, names);
        }
    } else {
        SSL_CTX_set_verify(ctx, o->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return NC_ETLS;
}

/* The reason is the thread's nc_last_error too: a constructor that fails on it returns no other text. */
int nc_tls_ctx_new(SSL_CTX **out, const nc_tls_opts *o, int is_server, char *err, size_t errlen) {
    int r = ctx_new(out, o, is_server, err, errlen);
    if (r) nc_set_last_error(r, "%s", err);
    return r;
}

/* Reasons OpenSSL gives when the first bytes from the peer are not a TLS record at all. */
static int not_tls(unsigned long e) {
    if (!e || ERR_GET_LIB(e) != ERR_LIB_SSL) return 0;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_RECORD_LENGTH_MISMATCH:
#ifdef SSL_R_RECORD_LAYER_FAILURE
    case SSL_R_RECORD_LAYER_FAILURE:
#endif
        return 1;
    default:
        return 0;
    }
}

void nc_tls_describe_error(SSL *ssl, char *out, size_t outlen, int in_handshake) {
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long first = ERR_peek_error(), e = ERR_peek_last_error();
    char buf[256] = "";
    if (e) {
        const char *reason = ERR_reason_error_string(e);
        if (reason)
            snprintf(buf, sizeof buf, "%s", reason);
        else
            ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    const char *pre = in_handshake ? "TLS handshake failed: " : "";
    int server = ssl && SSL_is_server(ssl);
    if (vr != X509_V_OK)
        snprintf(out, outlen, "%scertificate verification failed: %s", pre,
                 X509_verify_cert_error_string(vr));
    else if (in_handshake && (not_tls(first) || not_tls(e)))
        snprintf(out, outlen, "%s",
                 server
                     ? "TLS handshake failed: the peer does not speak TLS (a plain tcp:// client?)"
                     : "TLS handshake failed: the peer did not answer in TLS (is it a plain tcp:// port?)");
    else if (buf[0])
        snprintf(out, outlen, "%s%s", in_handshake ? pre : "TLS error: ", buf);
    else
        snprintf(out, outlen, "%s", in_handshake ? "TLS handshake failed" : "TLS error");
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

void nc_tls_opts_copy(nc_tls_opts *dst, const nc_tls_opts *src) {
    *dst = *src;
    dst->cert_file = dup_or_null(src->cert_file);
    dst->key_file = dup_or_null(src->key_file);
    dst->ca_file = dup_or_null(src->ca_file);
    dst->server_name = dup_or_null(src->server_name);
}

void nc_tls_opts_free(nc_tls_opts *o) {
    free((char *)o->cert_file);
    free((char *)o->key_file);
    free((char *)o->ca_file);
    free((char *)o->server_name);
}
