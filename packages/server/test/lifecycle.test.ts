import { lifecycleSuite } from "./lifecycle-cases.js";
import { TEST_DRIVERS } from "./support/drivers.js";

// Once per runtime driver this machine runs (only `process` today).
for (const driver of TEST_DRIVERS) lifecycleSuite(driver);
