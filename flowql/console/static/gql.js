// GraphQL over HTTP (POST /graphql) and over WebSocket (graphql-transport-ws), with the
// session's tokens kept in this module's memory only: never in web storage or cookies.

const ENDPOINT = "/graphql";

export class ApiError extends Error {
  constructor(message, code, details) {
    super(message);
    this.code = code || "ERROR";
    this.details = details || {};
  }
}

const session = { access: null, refresh: null, timer: null, listeners: new Set() };

export function signedIn() {
  return session.access !== null;
}

export function onSessionChange(listener) {
  session.listeners.add(listener);
}

function setTokens(tokens) {
  clearTimeout(session.timer);
  session.access = tokens ? tokens.accessToken : null;
  session.refresh = tokens ? tokens.refreshToken : null;
  if (tokens) {
    // Rotate a little before the access token expires.
    const ms = Math.max(5, tokens.expiresIn - 30) * 1000;
    session.timer = setTimeout(() => refresh().catch(() => signOut()), ms);
  }
  socket.reset();
  for (const listener of session.listeners) listener(signedIn());
}

async function post(query, variables, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables: variables || {} }),
      credentials: "omit",
    });
  } catch (error) {
    throw new ApiError("The server cannot be reached.", "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch (error) {
    throw new ApiError(`The server answered ${response.status}.`, "INTERNAL_ERROR");
  }
  if (body.errors && body.errors.length) {
    const first = body.errors[0];
    const ext = first.extensions || {};
    throw new ApiError(first.message, ext.code, ext);
  }
  return body.data;
}

const TOKENS = "accessToken refreshToken expiresIn";

export async function signIn(email, password) {
  const data = await post(
    `mutation SignIn($email: String!, $password: String!) {
      login(email: $email, password: $password) { ${TOKENS} } }`,
    { email, password },
  );
  setTokens(data.login);
}

async function refresh() {
  if (!session.refresh) throw new ApiError("Not signed in.", "UNAUTHORIZED");
  const data = await post(
    `mutation Refresh($token: String!) { refreshToken(refreshToken: $token) { ${TOKENS} } }`,
    { token: session.refresh },
  );
  setTokens(data.refreshToken);
}

export function signOut() {
  setTokens(null);
}

// A query or mutation as the signed-in user; one refresh and retry on UNAUTHORIZED.
export async function gql(query, variables) {
  try {
    return await post(query, variables, session.access);
  } catch (error) {
    if (error.code !== "UNAUTHORIZED" || !session.refresh) throw error;
    try {
      await refresh();
    } catch (failed) {
      signOut();
      throw error;
    }
    return post(query, variables, session.access);
  }
}

// One shared WebSocket; each subscription is an id on it. Reopened after a token change.
const socket = {
  ws: null,
  ready: null,
  next: 1,
  subs: new Map(),

  reset() {
    const subs = [...this.subs.values()];
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
    }
    this.ws = null;
    this.ready = null;
    this.subs.clear();
    for (const sub of subs) sub.onError(new ApiError("The session changed.", "CLOSED"));
  },

  open() {
    if (this.ready) return this.ready;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${ENDPOINT}`;
    const ws = new WebSocket(url, "graphql-transport-ws");
    this.ws = ws;
    this.ready = new Promise((resolve, reject) => {
      ws.onopen = () => {
        ws.send(JSON.stringify({
          type: "connection_init",
          payload: { Authorization: `Bearer ${session.access}` },
        }));
      };
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        const sub = this.subs.get(message.id);
        if (message.type === "connection_ack") resolve(ws);
        else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
        else if (message.type === "next" && sub) {
          if (message.payload.errors && message.payload.errors.length) {
            const first = message.payload.errors[0];
            const ext = first.extensions || {};
            sub.onError(new ApiError(first.message, ext.code, ext));
          } else sub.onNext(message.payload.data);
        } else if (message.type === "error" && sub) {
          this.subs.delete(message.id);
          const first = (message.payload && message.payload[0]) || {};
          const ext = first.extensions || {};
          sub.onError(new ApiError(first.message || "Subscription refused.", ext.code, ext));
        } else if (message.type === "complete" && sub) {
          this.subs.delete(message.id);
          sub.onComplete();
        }
      };
      ws.onclose = (event) => {
        reject(new ApiError(event.reason || "The live connection closed.", "CLOSED"));
        const subs = [...this.subs.values()];
        this.subs.clear();
        this.ws = null;
        this.ready = null;
        for (const sub of subs) sub.onError(new ApiError(event.reason || "The live connection closed.", "CLOSED"));
      };
    });
    return this.ready;
  },
};

// Subscribe; returns a function that stops the subscription.
export function subscribe(query, variables, { onNext, onError = () => {}, onComplete = () => {} }) {
  const id = String(socket.next++);
  let stopped = false;
  socket.subs.set(id, { onNext, onError, onComplete });
  const ready = socket.open().then((ws) => {
    if (!stopped) ws.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
  });  // a refused connection reaches onError through the socket's close
  ready.catch(() => {});
  const stop = () => {
    stopped = true;
    if (socket.subs.delete(id) && socket.ws && socket.ws.readyState === WebSocket.OPEN) {
      socket.ws.send(JSON.stringify({ id, type: "complete" }));
    }
  };
  stop.ready = ready;  // resolves once the subscribe message is sent
  return stop;
}
