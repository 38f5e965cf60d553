import { forwarderSuite } from "./forwarder-cases.js";

// The default engine: io_uring where the kernel allows it (this project's CI machine does).
forwarderSuite("io_uring");
