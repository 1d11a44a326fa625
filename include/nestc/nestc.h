/* nestc — NestJS microservices for C. The umbrella header: include this one. */
#ifndef NESTC_NESTC_H
#define NESTC_NESTC_H

#include "nestc/client.h"
#include "nestc/codec.h"
#include "nestc/error.h"
#include "nestc/hooks.h"
#include "nestc/json_reader.h"
#include "nestc/log.h"
#include "nestc/message.h"
#include "nestc/metrics.h"
#include "nestc/options.h"
#include "nestc/policy.h"
#include "nestc/server.h"
#include "nestc/tls.h"
#include "nestc/trace.h"
#include "nestc/version.h"

#endif
