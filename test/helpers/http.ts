// One JSON call to a gateway with an API key, for e2e tests: the status, the parsed body when it is
// JSON (else null) and the raw text (JSONL downloads, error pages).

export interface ApiReply {
  status: number;
  json: any;
  text: string;
}

/** `method url` on `base` with `Authorization: Bearer key`; a body is sent as JSON. */
export async function callApi(base: string, key: string, method: string, url: string, body?: unknown): Promise<ApiReply> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON (JSONL, empty) */
  }
  return { status: res.status, json, text };
}
