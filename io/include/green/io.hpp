// green/io.hpp — everything in io/: fd readiness, addresses, sockets, TLS,
// buffered streams, servers and signals.
#pragma once

#include "green/address.hpp"
#include "green/fd.hpp"
#include "green/http.hpp"
#include "green/server.hpp"
#include "green/signal.hpp"
#include "green/socket.hpp"
#include "green/stream.hpp"
#include "green/stream_transport.hpp"
#include "green/tls_context.hpp"
#include "green/tls_socket.hpp"
