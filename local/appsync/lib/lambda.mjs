// The simulator's Lambda data source: invokes api-handler through the local stack's edge
// router (`POST /2015-03-31/functions/<name>/invocations`, as AppSync invokes Lambda), which
// runs the real binary under `cargo lambda watch`.

/** A function error, as AppSync reports it to the response template: the function's
 * `errorMessage`, with the type AppSync gives every Lambda error. */
export class LambdaError extends Error {
  constructor(message) {
    super(message);
    this.type = 'Lambda:Unhandled';
  }
}

/** An `invoke(payload)` for `functionName` at `endpoint`. */
export function lambdaInvoker({ endpoint, functionName, fetchImpl = fetch, timeoutMs = 120_000 }) {
  const url = `${endpoint.replace(/\/$/, '')}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`;
  return async function invoke(payload) {
    const res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new LambdaError(`the ${functionName} function could not be invoked (HTTP ${res.status})`);
    }
    let body = null;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new LambdaError(`the ${functionName} function returned a non-JSON result`);
      }
    }
    if (res.headers.get('x-amz-function-error')) {
      throw new LambdaError(body?.errorMessage ?? `the ${functionName} function failed`);
    }
    return body;
  };
}
