// The fallback engine (kernels or container seccomp profiles without io_uring), forced here.
// The forwarder reads this when it loads, at the first wire session; each test file has its own process.
process.env["CCP_WIRE_FORWARDER"] = "epoll";
const { forwarderSuite } = await import("./forwarder-cases.js");
forwarderSuite("epoll");
