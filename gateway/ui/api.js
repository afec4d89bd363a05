// The authenticated API, called with the key in `Authorization: Bearer`
// only: never in a URL, a cookie or storage other than this tab's
// sessionStorage (kept by app.js).

/** An error the API answered, with its status and its own message. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export class Api {
  #key;

  constructor(key) {
    this.#key = key;
  }

  async #fetch(path, params) {
    let resp;
    try {
      resp = await fetch(url(path, params), {
        headers: { Authorization: `Bearer ${this.#key}` },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new ApiError(0, `The gateway could not be reached (${e.message}).`, 'unreachable');
    }
    if (!resp.ok) {
      let message = `The gateway answered ${resp.status}.`;
      let code;
      try {
        const body = await resp.json();
        if (body && body.error && body.error.message) {
          message = body.error.message;
          code = body.error.code;
        }
      } catch {
        // Not JSON: keep the status line.
      }
      throw new ApiError(resp.status, message, code);
    }
    return resp;
  }

  /** GET `path` with `params`, as JSON. */
  async json(path, params) {
    return (await this.#fetch(path, params)).json();
  }

  /** GET `path` with `params` as a Blob of its own type (CSV). */
  async blob(path, params) {
    const resp = await this.#fetch(path, params);
    const type = resp.headers.get('content-type') || 'application/octet-stream';
    return new Blob([await resp.arrayBuffer()], { type });
  }
}
