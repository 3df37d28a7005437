// SPDX-License-Identifier: Apache-2.0
export { Cordon } from "./lib/client.js";
export * from "./lib/errors.js";
export { OPERATIONS } from "./lib/operations.js";
export { packDirectory } from "./lib/tar.js";
export { VERSION } from "./lib/version.js";
