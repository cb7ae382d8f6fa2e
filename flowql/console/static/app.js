// The console: hash routes (#/processes, #/processes/ID, #/workflows, #/workflows/ID, #/health)
// over flowql's GraphQL. Every view reads and writes through gql.js only.

import { ApiError, gql, onSessionChange, signIn, signOut, signedIn, subscribe } from "./gql.js";
import { announce, append, badge, clear, duration, errorBox, h, json, time } from "./dom.js";
import { diagram } from "./diagram.js";
import { activityChart } from "./chart.js";

const STATUSES = ["PENDING", "RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED"];
const ACTIVE = new Set(["PENDING", "RUNNING", "WAITING"]);
const PAGE = 25;

const state = { viewer: null, workspaceId: null, cleanup: [] };

const main = () => document.getElementById("main");

function onLeave(stop) {
  state.cleanup.push(stop);
}

function leave() {
  for (const stop of state.cleanup.splice(0)) {
    try { stop(); } catch (error) { /* already stopped */ }
  }
}

function workspace() {
  return state.viewer?.workspaces.find((w) => w.id === state.workspaceId) || null;
}

// ---------- sign-in ----------

function loginView() {
  const status = h("div", { class: "form-status" });
  const email = h("input", { id: "email", name: "email", type: "email", required: true, autocomplete: "username" });
  const password = h("input", { id: "password", name: "password", type: "password", required: true, autocomplete: "current-password" });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to flowql"),
    h("label", { for: "email" }, "Email"), email,
    h("label", { for: "password" }, "Password"), password,
    button, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(status);
    button.disabled = true;
    try {
      await signIn(email.value.trim(), password.value);
      password.value = "";
      if (!location.hash || location.hash === "#/login") location.hash = "#/processes";
      else route();
    } catch (error) {
      append(status, errorBox(error));
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("top").hidden = true;
  append(clear(main()), form);
  email.focus();
}

// ---------- header ----------

async function loadViewer() {
  const data = await gql(`query Viewer { viewer { user { email } workspaces {
    id name viewerRole viewerPrivileges } } }`);
  state.viewer = data.viewer;
  if (!workspace()) state.workspaceId = state.viewer.workspaces[0]?.id || null;
}

function header(current) {
  const top = document.getElementById("top");
  const select = h("select", { id: "workspace", name: "workspace" },
    state.viewer.workspaces.map((w) => h("option", { value: w.id, selected: w.id === state.workspaceId }, w.name)));
  select.addEventListener("change", () => {
    state.workspaceId = select.value;
    announce(`Workspace ${workspace()?.name}`);
    route();
  });
  const link = (href, label, key) => h("a", { href, "aria-current": current === key ? "page" : null }, label);
  append(clear(top),
    h("span", { class: "brand" }, "flowql"),
    h("nav", { "aria-label": "Console" },
      link("#/processes", "Processes", "processes"),
      link("#/workflows", "Workflows", "workflows"),
      link("#/health", "Health", "health")),
    h("div", { class: "who" },
      h("label", { for: "workspace" }, "Workspace"), select,
      h("span", { class: "email" }, state.viewer.user?.email || ""),
      h("button", { type: "button", class: "secondary", onclick: () => { signOut(); } }, "Sign out")));
  top.hidden = false;
}

// ---------- process list ----------

const PROCESS_FIELDS = `id number status title workspaceId workflowId scenarioId triggerId
  createdAt startedAt completedAt error workflow { id name } scenario { id title name }
  event { triggerType }`;

function processRow(p) {
  const what = p.workflow ? p.workflow.name
    : p.scenario ? (p.scenario.title || p.scenario.name || p.title || "scenario") : p.title;
  const trigger = p.event ? p.event.triggerType.toLowerCase() : p.scenarioId ? "action" : "manual";
  return h("tr", { "data-id": p.id, "data-status": p.status },
    h("td", {}, h("a", { href: `#/processes/${p.id}` }, `#${p.number}`)),
    h("td", {}, badge(p.status)),
    h("td", {}, what || "—"),
    h("td", {}, trigger),
    h("td", {}, time(p.startedAt || p.createdAt)),
    h("td", {}, duration(p.startedAt, ACTIVE.has(p.status) ? null : (p.completedAt || p.startedAt))));
}

async function processesView(params) {
  const ws = workspace();
  const statusFilter = params.get("status") || "";
  const workflowFilter = params.get("workflow") || "";
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((st) => h("option", { value: st, selected: st === statusFilter }, st.toLowerCase())));
  const workflowSelect = h("select", { id: "filter-workflow", name: "workflow" },
    h("option", { value: "" }, "All workflows"));
  const applyFilters = () => {
    const query = new URLSearchParams();
    if (statusSelect.value) query.set("status", statusSelect.value);
    if (workflowSelect.value) query.set("workflow", workflowSelect.value);
    location.hash = `#/processes${query.toString() ? `?${query}` : ""}`;
  };
  statusSelect.addEventListener("change", applyFilters);
  workflowSelect.addEventListener("change", applyFilters);

  const body = h("tbody", { id: "process-rows" });
  const status = h("div", { class: "list-status" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const live = h("span", { class: "live", "aria-live": "polite" }, "connecting…");
  append(clear(main()),
    h("div", { class: "title-row" }, h("h1", {}, "Processes"), live),
    h("div", { class: "filters", role: "search" },
      h("label", { for: "filter-status" }, "Status"), statusSelect,
      h("label", { for: "filter-workflow" }, "Workflow"), workflowSelect),
    h("table", { class: "processes", "aria-label": "Processes, newest first" },
      h("thead", {}, h("tr", {},
        ["Process", "Status", "Workflow or scenario", "Trigger", "Started", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
      body),
    more, status);

  const filter = { workspaceId: ws.id };
  if (statusFilter) filter.statuses = [statusFilter];
  if (workflowFilter) filter.workflowId = workflowFilter;
  const rows = new Map();
  let cursor = null;

  const put = (p, atTop) => {
    const row = processRow(p);
    const old = rows.get(p.id);
    if (old) old.replaceWith(row);
    else if (atTop) body.prepend(row);
    else body.append(row);
    rows.set(p.id, row);
  };

  const page = async () => {
    more.disabled = true;
    try {
      const data = await gql(`query Processes($first: Int!, $after: String, $filter: ProcessFilterInput) {
        processes(first: $first, after: $after, filter: $filter) {
          nodes { ${PROCESS_FIELDS} } pageInfo { hasNextPage endCursor } totalCount } }`,
      { first: PAGE, after: cursor, filter });
      for (const p of data.processes.nodes) put(p, false);
      cursor = data.processes.pageInfo.endCursor;
      more.hidden = !data.processes.pageInfo.hasNextPage;
      clear(status);
      const filtered = statusFilter || workflowFilter;
      if (!rows.size) append(status, h("p", { class: "empty" }, filtered ? "No processes match these filters." : "No processes yet."));
    } catch (error) {
      append(clear(status), errorBox(error));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", page);

  gql(`query Workflows($filter: WorkflowFilterInput) { workflows(first: 100, filter: $filter) { nodes { id name } } }`,
    { filter: { workspaceId: ws.id } }).then((data) => {
    for (const w of data.workflows.nodes) {
      workflowSelect.append(h("option", { value: w.id, selected: w.id === workflowFilter }, w.name));
    }
  }, () => {});

  const stop = subscribe(
    `subscription Live($workflowId: UUID, $statuses: [ProcessStatus!]) {
      processEvents(workflowId: $workflowId, statuses: $statuses) { ${PROCESS_FIELDS} } }`,
    { workflowId: workflowFilter || null, statuses: statusFilter ? [statusFilter] : null },
    {
      onNext: (data) => {
        const p = data.processEvents;
        if (p.workspaceId !== ws.id) return;
        const fresh = !rows.has(p.id);
        put(p, true);
        if (fresh) announce(`Process #${p.number} ${p.status.toLowerCase()}`);
        clear(status);
      },
      onError: (error) => { live.textContent = `not live: ${error.message}`; live.classList.add("off"); },
    });
  onLeave(stop);
  // Subscribe first, then read the first page: a change between the two is not lost.
  try {
    await stop.ready;
    live.textContent = "live";
  } catch (error) { /* onError has said so */ }
  await page();
}

// ---------- process detail ----------

const DETAIL = `query Process($id: UUID!) { process(id: $id) {
  ${PROCESS_FIELDS} input output state
  steps { id number attempt status startedAt finishedAt error agent { id name type } }
  current { key title isEndState actions { key title actors } }
  history { number type action skipped hash previousHash createdAt }
} }`;

async function processView(id) {
  const container = clear(main());
  const actionsStatus = h("div", { class: "action-status" });
  const headerBox = h("div", {});
  const stepsBox = h("section", { "aria-labelledby": "steps-title" });
  const scenarioBox = h("section", {});
  const messagesBox = h("section", { "aria-labelledby": "messages-title" });
  const logList = h("ol", { class: "logs", id: "logs" });
  append(container,
    h("p", {}, h("a", { href: "#/processes" }, "← Processes")),
    headerBox, actionsStatus, stepsBox, scenarioBox, messagesBox,
    h("section", { "aria-labelledby": "logs-title" }, h("h2", { id: "logs-title" }, "Logs"), logList));

  let process = null;
  const render = () => {
    const p = process;
    const what = p.workflow ? h("a", { href: `#/workflows/${p.workflow.id}` }, p.workflow.name)
      : p.scenario ? (p.scenario.title || p.scenario.name || p.title || p.scenario.id) : p.title;
    const buttons = [];
    if (ACTIVE.has(p.status)) buttons.push(h("button", { type: "button", class: "danger", onclick: () => act("cancelProcess") }, "Cancel"));
    if (p.status === "FAILED" || p.status === "CANCELLED") buttons.push(h("button", { type: "button", onclick: () => act("retryProcess") }, "Retry"));
    append(clear(headerBox),
      h("div", { class: "title-row" }, h("h1", { id: "process-title" }, `Process #${p.number}`), badge(p.status), h("span", { class: "buttons" }, buttons)),
      h("dl", { class: "facts" },
        h("dt", {}, p.workflow ? "Workflow" : "Scenario"), h("dd", {}, what),
        h("dt", {}, "Started"), h("dd", {}, time(p.startedAt || p.createdAt)),
        h("dt", {}, "Duration"), h("dd", {}, duration(p.startedAt, ACTIVE.has(p.status) ? null : p.completedAt)),
        p.error ? [h("dt", {}, "Error"), h("dd", { class: "error-text" }, p.error)] : null,
        h("dt", {}, "Input"), h("dd", {}, h("pre", {}, json(p.input))),
        p.output !== null ? [h("dt", {}, "Output"), h("dd", {}, h("pre", {}, json(p.output)))] : null));
    append(clear(stepsBox), h("h2", { id: "steps-title" }, "Steps"),
      p.steps.length ? h("table", { class: "steps", "aria-label": "Steps" },
        h("thead", {}, h("tr", {}, ["#", "Agent", "Attempt", "Status", "Duration", "Error"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, p.steps.map((st) => h("tr", { "data-status": st.status },
          h("td", {}, st.number), h("td", {}, st.agent ? `${st.agent.name} (${st.agent.type})` : "—"),
          h("td", {}, st.attempt), h("td", {}, badge(st.status)),
          h("td", {}, duration(st.startedAt, st.finishedAt)), h("td", { class: "error-text" }, st.error || ""))))) :
        h("p", { class: "empty" }, "No steps yet."));
    clear(scenarioBox);
    if (p.scenarioId) {
      append(scenarioBox, h("h2", {}, "Scenario state"),
        p.current ? h("div", {},
          h("p", {}, "Current state: ", h("strong", {}, p.current.title || p.current.key), p.current.isEndState ? " (end)" : ""),
          h("h3", {}, "Available actions"),
          p.current.actions.length ? h("ul", {}, p.current.actions.map((a) => h("li", {},
            h("button", { type: "button", class: "secondary", onclick: () => perform(a.key) }, a.title || a.key),
            " ", h("span", { class: "muted" }, `by ${a.actors.join(", ")}`)))) : h("p", { class: "empty" }, "None.")) : null,
        h("h3", {}, "History (hash-chained)"),
        h("table", { class: "history", "aria-label": "History" },
          h("thead", {}, h("tr", {}, ["#", "Event", "Action", "Hash", "Previous", "At"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, p.history.map((e) => h("tr", {},
            h("td", {}, e.number), h("td", {}, e.skipped ? `${e.type} (skipped)` : e.type), h("td", {}, e.action || ""),
            h("td", { class: "hash", title: e.hash }, e.hash.slice(0, 12)), h("td", { class: "hash", title: e.previousHash }, e.previousHash.slice(0, 12)),
            h("td", {}, time(e.createdAt)))))));
    }
  };

  const load = async () => {
    const data = await gql(DETAIL, { id });
    process = data.process;
    render();
    loadMessages();
  };

  const loadMessages = async () => {
    try {
      const data = await gql(`query Messages($filter: MessageFilterInput) { messages(first: 100, filter: $filter) {
        nodes { id number createdAt payload agent { name } } } }`, { filter: { processId: id } });
      const nodes = [...data.messages.nodes].reverse();
      append(clear(messagesBox), h("h2", { id: "messages-title" }, "Messages"),
        nodes.length ? h("ol", { class: "messages" }, nodes.map((m) => h("li", { "data-id": m.id },
          h("div", { class: "muted" }, `#${m.number} from ${m.agent ? m.agent.name : "?"} at ${time(m.createdAt)}`),
          h("pre", {}, json(m.payload))))) : h("p", { class: "empty" }, "No messages."));
    } catch (error) {
      append(clear(messagesBox), h("h2", { id: "messages-title" }, "Messages"), errorBox(error));
    }
  };

  const act = async (mutation) => {
    clear(actionsStatus);
    try {
      const data = await gql(`mutation Act($id: UUID!) { ${mutation}(id: $id) { id status } }`, { id });
      announce(`Process ${data[mutation].status.toLowerCase()}`);
      await load();
      watch();
    } catch (error) {
      append(actionsStatus, errorBox(error));
    }
  };

  const perform = async (action) => {
    clear(actionsStatus);
    try {
      await gql(`mutation Perform($input: PerformActionInput!) { performAction(input: $input) { __typename } }`,
        { input: { processId: id, action } });
      await load();
    } catch (error) {
      append(actionsStatus, errorBox(error));
    }
  };

  let stopWatch = null;
  let stopLogs = null;
  let gone = false;
  const watch = () => {
    if (gone) return;  // the view was left while a request was under way
    if (stopWatch) stopWatch();
    if (stopLogs) stopLogs();
    clear(logList);
    stopWatch = subscribe(`subscription Watch($id: UUID!) { processUpdated(id: $id) { id status } }`, { id }, {
      onNext: () => { load().catch((error) => append(clear(actionsStatus), errorBox(error))); },
    });
    stopLogs = subscribe(`subscription Logs($id: UUID!) { processLogs(id: $id, fromStart: true) {
      number level message createdAt } }`, { id }, {
      onNext: (data) => {
        const line = data.processLogs;
        logList.append(h("li", { class: `log-${line.level.toLowerCase()}` },
          h("span", { class: "muted" }, time(line.createdAt)), " ", h("strong", {}, line.level), " ", line.message));
      },
      onError: (error) => logList.append(h("li", {}, errorBox(error))),
    });
  };
  onLeave(() => {
    gone = true;
    if (stopWatch) stopWatch();
    if (stopLogs) stopLogs();
  });
  try {
    await load();
    watch();
  } catch (error) {
    append(clear(headerBox), h("h1", {}, "Process"), errorBox(error));
  }
}

// ---------- workflows ----------

async function workflowsView() {
  const box = h("div", {});
  append(clear(main()), h("h1", {}, "Workflows"), box);
  try {
    const data = await gql(`query Workflows($filter: WorkflowFilterInput) { workflows(first: 100, filter: $filter) {
      nodes { id number name status lastRunAt agents { id } } } }`, { filter: { workspaceId: state.workspaceId } });
    const nodes = data.workflows.nodes;
    append(box, nodes.length ? h("ul", { class: "cards" }, nodes.map((w) => h("li", {},
      h("a", { href: `#/workflows/${w.id}` }, w.name), " ", badge(w.status),
      h("div", { class: "muted" }, `${w.agents.length} agents · last run ${time(w.lastRunAt)}`)))) :
      h("p", { class: "empty" }, "No workflows in this workspace."));
  } catch (error) {
    append(box, errorBox(error));
  }
}

async function workflowView(id) {
  const box = h("div", {});
  append(clear(main()), h("p", {}, h("a", { href: "#/workflows" }, "← Workflows")), box);
  try {
    const data = await gql(`query Workflow($id: UUID!) { workflow(id: $id) {
      id name description status
      agents { id name type disabled sources { id } }
      triggers { id agentId type name active nextRunAt lastFiredAt }
      processes(last: 20) { id status createdAt steps { status createdAt agent { id } } }
    } }`, { id });
    const w = data.workflow;
    const last = new Map();
    for (const p of w.processes) {  // newest first: the first status seen per agent is its last
      for (const st of [...p.steps].reverse()) {
        if (st.agent && !last.has(st.agent.id)) last.set(st.agent.id, st.status);
      }
    }
    const chartBox = h("div", { class: "chart" });
    append(box,
      h("div", { class: "title-row" }, h("h1", {}, w.name), badge(w.status)),
      w.description ? h("p", {}, w.description) : null,
      h("section", { "aria-labelledby": "diagram-title" }, h("h2", { id: "diagram-title" }, "Agents"),
        diagram(w.agents, w.triggers, last)),
      h("section", { "aria-labelledby": "triggers-title" }, h("h2", { id: "triggers-title" }, "Triggers"),
        w.triggers.length ? h("ul", {}, w.triggers.map((t) => h("li", {},
          `${t.name} (${t.type.toLowerCase()})${t.active ? "" : " — inactive"}`,
          t.nextRunAt ? ` · next run ${time(t.nextRunAt)}` : "", t.lastFiredAt ? ` · last fired ${time(t.lastFiredAt)}` : ""))) :
          h("p", { class: "empty" }, "No triggers.")),
      h("section", { "aria-labelledby": "chart-title" }, h("h2", { id: "chart-title" }, "Processes per hour (last 24 h)"), chartBox),
      h("p", {}, h("a", { href: `#/processes?workflow=${w.id}` }, "This workflow's processes")));
    try {
      const activity = await gql(`query Activity($id: UUID!) { workflowActivity(workflowId: $id, hours: 24) {
        hour completed failed } }`, { id });
      append(chartBox, activityChart(activity.workflowActivity));
    } catch (error) {
      append(chartBox, errorBox(error));
    }
  } catch (error) {
    append(box, errorBox(error));
  }
}

// ---------- health ----------

async function healthView() {
  const box = h("div", {});
  append(clear(main()), h("h1", {}, "Health"), box);
  try {
    const data = await gql(`query Health($ws: UUID!) { health(workspaceId: $ws) {
      checkedAt queueDepth running waiting
      dispatcher workers { id name lastHeartbeatAt }
      scheduledTriggers { id name workflowId workflowName nextRunAt lastFiredAt }
      failedDeliveries { id subscriptionId eventType attempts lastStatusCode lastError createdAt }
    } }`, { ws: state.workspaceId });
    const hl = data.health;
    append(box,
      h("dl", { class: "facts" },
        h("dt", {}, "Queue depth (pending)"), h("dd", { id: "queue-depth" }, hl.queueDepth),
        h("dt", {}, "Running"), h("dd", {}, hl.running),
        h("dt", {}, "Waiting"), h("dd", {}, hl.waiting),
        h("dt", {}, "Dispatcher"), h("dd", {}, hl.dispatcher),
        h("dt", {}, "Checked"), h("dd", {}, time(hl.checkedAt))),
      h("h2", {}, "Workers"),
      hl.workers.length ? h("table", { "aria-label": "Workers" },
        h("thead", {}, h("tr", {}, ["Worker", "Last heartbeat"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hl.workers.map((wk) => h("tr", {}, h("td", {}, wk.name), h("td", {}, time(wk.lastHeartbeatAt))))))
        : h("p", { class: "empty" }, "No workers."),
      h("h2", {}, "Scheduled triggers"),
      hl.scheduledTriggers.length ? h("table", { "aria-label": "Scheduled triggers" },
        h("thead", {}, h("tr", {}, ["Trigger", "Workflow", "Next run", "Last fired"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hl.scheduledTriggers.map((t) => h("tr", {}, h("td", {}, t.name),
          h("td", {}, h("a", { href: `#/workflows/${t.workflowId}` }, t.workflowName)), h("td", {}, time(t.nextRunAt)), h("td", {}, time(t.lastFiredAt))))))
        : h("p", { class: "empty" }, "No scheduled triggers."),
      h("h2", {}, "Failed webhook deliveries"),
      hl.failedDeliveries.length ? h("table", { "aria-label": "Failed webhook deliveries" },
        h("thead", {}, h("tr", {}, ["Event", "Attempts", "Last status", "Last error", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, hl.failedDeliveries.map((d) => h("tr", {}, h("td", {}, d.eventType), h("td", {}, d.attempts),
          h("td", {}, d.lastStatusCode ?? "—"), h("td", { class: "error-text" }, d.lastError || ""), h("td", {}, time(d.createdAt))))))
        : h("p", { class: "empty" }, "No failed deliveries."));
  } catch (error) {
    append(box, errorBox(error));
  }
}

// ---------- router ----------

async function route() {
  leave();
  if (!signedIn()) {
    loginView();
    return;
  }
  const [path, query] = (location.hash.slice(1) || "/processes").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  try {
    if (!state.viewer) await loadViewer();
  } catch (error) {
    append(clear(main()), errorBox(error));
    return;
  }
  if (!workspace()) {
    header("");
    append(clear(main()), h("p", { class: "empty" }, "You belong to no workspace yet."));
    return;
  }
  const [view, id] = parts;
  header(view || "processes");
  if (view === "processes" && id) await processView(id);
  else if (view === "workflows" && id) await workflowView(id);
  else if (view === "workflows") await workflowsView();
  else if (view === "health") await healthView();
  else await processesView(params);
  document.title = `${document.querySelector("main h1")?.textContent || "Console"} · flowql`;
}

onSessionChange((inside) => {
  if (!inside) {
    state.viewer = null;
    state.workspaceId = null;
    leave();
    loginView();
  } else if (state.viewer) {
    route();  // a refreshed token: the live connection was reopened, subscribe again
  }
});
window.addEventListener("hashchange", () => route());
route();

export { ApiError };
