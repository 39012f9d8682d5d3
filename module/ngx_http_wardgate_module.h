/*
 * What the files of wardgate's nginx module share.
 */

#ifndef NGX_HTTP_WARDGATE_MODULE_H
#define NGX_HTTP_WARDGATE_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


extern ngx_module_t  ngx_http_wardgate_module;

/* directives of ngx_http_wardgate_vars.c */
char *wg_decision(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *wg_log_json(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *wg_alias(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *wg_empty(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

#endif
