// SPDX-License-Identifier: Apache-2.0
// cordon's version (meson.build); tests/integration/test_sdk.py checks they match.
export const VERSION = "0.1.0";
