// SPDX-License-Identifier: Apache-2.0
// The API's errors, one class per error code (docs/api.md, "Errors"): every
// error body is {"error": {"code", "message"}}.

/** An error the API answered, or a failure to reach it. */
export class CordonError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, operation?: string}} [info]
   */
  constructor(message, info = {}) {
    super(message);
    this.name = new.target.name;
    /** the HTTP status, 0 when no answer came */
    this.status = info.status ?? 0;
    /** the API's error code (`not_found`, ...), or `connection` */
    this.code = info.code ?? "connection";
    /** the operationId of openapi.yaml that failed */
    this.operation = info.operation;
  }
}

export class BadRequest extends CordonError {}
export class Unauthorized extends CordonError {}
export class Forbidden extends CordonError {}
export class NotFound extends CordonError {}
export class MethodNotAllowed extends CordonError {}
export class Conflict extends CordonError {}
export class TooLarge extends CordonError {}
export class UnsupportedMediaType extends CordonError {}
export class TooManyRequests extends CordonError {}
export class Internal extends CordonError {}
export class Unavailable extends CordonError {}
export class Timeout extends CordonError {}

/** The class for each error code the API gives. */
export const ERROR_CLASSES = Object.freeze({
  bad_request: BadRequest,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  method_not_allowed: MethodNotAllowed,
  conflict: Conflict,
  too_large: TooLarge,
  unsupported_media_type: UnsupportedMediaType,
  too_many_requests: TooManyRequests,
  internal: Internal,
  unavailable: Unavailable,
  timeout: Timeout,
});

const BY_STATUS = {
  400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
  405: "method_not_allowed", 409: "conflict", 413: "too_large",
  415: "unsupported_media_type", 429: "too_many_requests", 500: "internal",
  503: "unavailable", 504: "timeout",
};

/**
 * The typed error for an answer with an error status.
 * @param {number} status
 * @param {string} text the body
 * @param {string} operation
 */
export function errorFor(status, text, operation) {
  let code = BY_STATUS[status] ?? "http_" + status;
  let message = text.slice(0, 1024);
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "object" && body.error) {
      if (typeof body.error.code === "string") code = body.error.code;
      if (typeof body.error.message === "string") message = body.error.message;
    }
  } catch {
    // not JSON: a proxy's page; the status decides the class
  }
  const cls = ERROR_CLASSES[code] ?? ERROR_CLASSES[BY_STATUS[status]] ?? CordonError;
  return new cls(`${operation}: ${status} ${code}: ${message}`, { status, code, operation });
}
