/* Hailuo Batch report: the A/B gallery of one run. Plain DOM, no framework, no network.
 * Every text from the run is set with textContent or setAttribute, never parsed as HTML. */
(() => {
  "use strict";

  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const RUN = DATA.run;
  /* The grid compares the jobs of the current plan; those it no longer has (`planned` false: the
   * manifest edited, or a start frame's file changed since) are listed apart, below it. */
  const JOBS = DATA.jobs.filter((job) => job.planned);
  const EARLIER = DATA.jobs.filter((job) => !job.planned);
  /* Those of them made from an earlier content of their start frame's file (an image re-saved
   * since), by key, with the SHA-256 of that content and of the content now: they bear the frame's
   * name as the new ones do, and are told apart by it, and from those of another earlier content. */
  const FRAME_CHANGED = new Map(Object.entries(DATA.frame_changed));
  const LABELS = DATA.labels;
  const AXES = DATA.axes.map((axis) => axis.key);
  const VARYING = DATA.varying;
  const STYLE_AXES = ["vibe", "lighting", "color_theme", "style_set"];
  /* The states the totals count and the state filter offers (its values in the address), in the
   * words of the cards' badges: a job failed for good waits for --retry-failed, one failed for now
   * the next run takes up by itself; each is told at a glance in the totals and filtered apart,
   * under its label. */
  const STATES = { done: "done", failed: "failed", failedForNow: "failed for now", unfinished: "unfinished" };
  const STATE_LABELS = { [STATES.failed]: "failed for good" };
  const stateLabel = (state) => STATE_LABELS[state] || state;
  const STATE_TITLES = {
    [STATES.failed]: "failed for good: tried again only by a run with --retry-failed",
    [STATES.failedForNow]: "the next run takes these up by itself",
  };
  const PICKS_KEY = `hailuo-report:picks:${RUN.name}:${RUN.out}`;
  const FRAME = 1 / 24;
  const $ = (id) => document.getElementById(id);

  const valueKey = (value) => (value === null || value === undefined ? "—"
    : typeof value === "object" ? JSON.stringify(value) : String(value));
  const stateGroup = (job) => (job.state === "downloaded" ? STATES.done
    : job.state !== "failed" ? STATES.unfinished : job.shown_state);
  /* A name as a class: `failed for now` as `failed-for-now`. */
  const classOf = (name) => name.replaceAll(" ", "-");
  const money = (value) => (value === null || value === undefined ? "—" : `$${Number(value).toFixed(2)}`);
  /* Money spent, with the part of it booked at estimates when there is one (to the cent), in
   * the words the run's other reports use: `$2.80 ($0.84 of it estimated)`. */
  const spentText = (spent, estimated) => (Math.round(Number(estimated || 0) * 100)
    ? `${money(spent)} (${DATA.estimated_part.replace("{amount}", money(estimated))})` : money(spent));
  const jobCount = (count) => `${count} ${count === 1 ? "job" : "jobs"}`;
  /* The prompt text the jobs share, or null: a prompt whose vars vary has a text on each cell. */
  const sharedPrompt = (jobs) => {
    const texts = new Set(jobs.map((job) => job.prompt || ""));
    return texts.size === 1 ? [...texts][0] : null;
  };
  const seconds = (value) => {
    if (value === null || value === undefined) return "—";
    const s = Math.round(Number(value));
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  };

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  /* The distinct values of an axis, in plan order. */
  const VALUES = Object.fromEntries(AXES.map((axis) => [axis,
    [...new Set(JOBS.map((job) => valueKey(job.axes[axis])))]]));
  /* What the filters offer: the states the jobs are in, then each varying axis's values, a button
   * each, or, for an axis of more values than MANY (a prompt per video of a big batch), a text box
   * that keeps the values holding its text. */
  const MANY = 40;
  const FILTERS = [["state", Object.values(STATES).filter((state) => JOBS.some((job) => stateGroup(job) === state))],
    ...VARYING.map((axis) => [axis, VALUES[axis]])];

  const view = {
    row: null, col: null, size: 280, autoplay: true, onlyPicks: false,
    hidden: Object.fromEntries(["state", ...AXES].map((axis) => [axis, new Set()])),
    find: {},  // an axis of many values: the text its shown values hold
  };
  const many = (values) => values.length > MANY;

  /* Styles as columns and prompts as rows when both vary; an axis of many values (a prompt per
   * video) as rows rather than one row thousands of columns wide. */
  function defaultAxes() {
    const col = STYLE_AXES.find((axis) => VARYING.includes(axis))
      || VARYING.find((axis) => axis !== "prompt" && axis !== "n") || VARYING[0] || AXES[0];
    const row = (col !== "prompt" && AXES.includes("prompt") ? "prompt" : null)
      || VARYING.find((axis) => axis !== col) || AXES.find((axis) => axis !== col) || col;
    return col && many(VALUES[col]) && !many(VALUES[row]) ? { row: col, col: row } : { row, col };
  }

  /* The view lives in the address, so a reload or a shared link shows the same one:
   * `#rows=prompt&cols=vibe&hide.vibe=Clay&hide.state=failed`, `find.prompt=scene-12` for an axis of
   * many values. An axis or a value this run does not have (a link to an older version of the
   * sweep) is left out. */
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const hidden of Object.values(view.hidden)) hidden.clear();
    const chosen = defaultAxes();
    view.row = AXES.includes(params.get("rows")) ? params.get("rows") : chosen.row;
    view.col = AXES.includes(params.get("cols")) ? params.get("cols") : chosen.col;
    if (view.row === view.col) view.row = chosen.row === view.col ? chosen.col : chosen.row;
    for (const [axis, values] of FILTERS) {
      if (many(values)) view.find[axis] = params.get(`find.${axis}`) || "";
      else for (const value of params.getAll(`hide.${axis}`)) if (values.includes(value)) view.hidden[axis].add(value);
    }
  }

  function writeHash() {
    const params = new URLSearchParams({ rows: view.row, cols: view.col });
    for (const [axis, values] of FILTERS) {
      if (many(values)) { if (view.find[axis]) params.append(`find.${axis}`, view.find[axis]); }
      else for (const value of values) if (view.hidden[axis].has(value)) params.append(`hide.${axis}`, value);
    }
    history.replaceState(null, "", `#${params}`);
  }

  /* Show the view the address names, and name it as the page shows it (what it left out gone):
   * on opening, and when a link to another view is opened in this tab, which changes only the hash. */
  function applyHash() {
    readHash();
    writeHash();
    axisLists();
    filters();
    layout();
  }

  /* Picks live in this browser's localStorage, one list per run (name and output folder);
   * a browser that refuses storage to file:// pages keeps them for the visit only. */
  const store = (() => {
    try { localStorage.getItem(PICKS_KEY); return localStorage; } catch { return null; }
  })();
  const picks = new Set(JSON.parse((store && store.getItem(PICKS_KEY)) || "[]"));
  function savePicks() {
    if (store) store.setItem(PICKS_KEY, JSON.stringify([...picks]));
    $("pick-count").textContent = `${picks.size} picked`;
  }
  function picksDocument() {
    return {
      run: { name: RUN.name, out: RUN.out, manifest: RUN.manifest },
      exported_at: new Date().toISOString(),
      picks: DATA.jobs.filter((job) => picks.has(job.key)).map((job) => ({
        key: job.key, short_key: job.short_key, index: job.index, prompt: job.prompt,
        axes: job.axes, styles: job.styles, file: job.file, cost_usd: job.cost_usd,
      })),
    };
  }
  function exportPicks() {
    const text = JSON.stringify(picksDocument(), null, 2);
    const blob = new Blob([text + "\n"], { type: "application/json" });
    const filename = `${RUN.name}-picks.json`.replace(/[^\w.-]+/g, "_");
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /* What the reader did to the rows, kept while the page is open, whatever is built again (a row
   * scrolled far away and back, the grid laid out anew): each job of a row paused or stepped, by
   * its key, and the time its video was held at. Its video, made again, shows that frame and
   * does not play until its row is played; a job never held plays as it comes into view. */
  const held = new Map();
  const keyOf = (media) => media.closest(".cell").dataset.key;

  /* A cell's video element is made only when the cell nears the viewport (inserting a
   * thousand media elements at once costs about 0.3 ms each), and plays only while visible. */
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        const video = load(entry.target);
        if (view.autoplay && !held.has(keyOf(entry.target))) video.play().catch(() => {});
      } else {
        const video = entry.target.querySelector("video");
        if (video && !video.paused) video.pause();
      }
    }
  }, { rootMargin: "400px 0px" });

  function load(media) {
    const made = media.querySelector("video");
    if (made) return made;
    const video = el("video", {
      muted: true, loop: true, playsinline: true, preload: "auto",
      poster: media.dataset.poster || null, src: media.dataset.src,
    });
    video.muted = true;
    media.prepend(video);
    if (held.has(keyOf(media))) video.currentTime = held.get(keyOf(media));  // where it starts once loaded
    return video;
  }

  /* Rows are built only near the viewport, so a grid of 100,000 jobs holds a few hundred cells:
   * each section's lines come in chunks of a few rows, a chunk an empty placeholder as tall as
   * its rows would be (the rows built so far tell how tall a row is) until it comes within NEAR
   * px of the window, and one again, its videos let go, once farther than FAR px. A row as wide
   * as many windows (hundreds of prompts as columns) fills its slots the same way sideways. */
  const NEAR = 2400;
  const FAR = 2 * NEAR;
  const CHUNK_CELLS = 24;
  const CHUNK_LINES = 8;
  const chunks = new Map();  // a chunk's element: what builds its rows (and its sections' heads)
  const built = new Set();
  const holder = new Map();  // a job's key: the chunk that holds its row
  const slotJobs = new WeakMap();  // a slot's element: the jobs it shows
  // the columns and the label's axes of the current layout, and the rows and section heads its
  // placeholders stand for
  let shape = { columns: [], others: [], lines: 0, heads: 0 };
  const near = new IntersectionObserver((entries) => {
    const coming = entries.filter((entry) => entry.isIntersecting && !built.has(entry.target));
    const columns = across();
    for (const entry of coming) build(entry.target, columns);
    if (coming.length) measure();
  }, { rootMargin: `${NEAR}px 0px` });
  const far = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) continue;
      if (built.delete(entry.target)) release(entry.target);
      else if (!chunks.has(entry.target)) drop(entry.target);  // a job no longer in the manifest: its card stays
    }
  }, { rootMargin: `${FAR}px 0px` });

  function build(chunk, columns) {
    chunk.replaceChildren(...chunks.get(chunk)());
    built.add(chunk);
    fill(chunk, columns);
  }

  /* How far apart columns are: a cell and the 8 px gap after it (`.row`'s gap in report.css). */
  const columnStep = () => view.size + 8;

  /* The first and last columns within NEAR px of the grid's visible width, then within FAR px. */
  function across() {
    const box = $("grid");
    const index = (margin, end) => Math.floor((box.scrollLeft + margin + (end ? box.clientWidth : 0)) / columnStep());
    return { near: [index(-NEAR, false), index(NEAR, true)], far: [index(-FAR, false), index(FAR, true)] };
  }

  /* Fill the slots of a chunk's rows near the grid's visible width; empty those far from it. */
  function fill(chunk, columns) {
    const within = ([first, last], index) => index >= first && index <= last;
    for (const row of chunk.querySelectorAll(".row")) {
      [...row.children].slice(1).forEach((slot, index) => {
        if (!slot.childElementCount && within(columns.near, index)) {
          const jobs = slotJobs.get(slot);
          slot.append(...(jobs.length ? jobs.map(cell) : [el("div", { class: "gap", text: "—" })]));
        } else if (slot.childElementCount && !within(columns.far, index)) {
          release(slot);
        }
      });
    }
  }

  /* Empty a chunk or a slot gone far from the window, its videos let go. */
  function release(node) {
    for (const media of node.querySelectorAll(".media[data-src]")) observer.unobserve(media);
    drop(node);
    node.replaceChildren();
  }

  /* A video let go gives back its decoder and buffers at once, not whenever it is collected (the
   * browser refuses new videos past a thousand or so held), and leaves its cell, which makes a
   * new one (`load`) if it comes back into view. */
  function drop(node) {
    for (const video of node.querySelectorAll("video")) {
      video.pause();
      video.removeAttribute("src");
      video.load();
      video.remove();
    }
  }

  /* The placeholders take the mean height of the rows built, and of the section heads built (each
   * row measured by itself, so rows laid out on top of one another cannot shrink it), squeezed
   * alike when the grid laid out whole would make the page taller than the browser can lay out:
   * 100,000 rows of one cell at Size 560 would take 36 million px, and jobs past Chromium's
   * 33,554,432 could never be scrolled to. */
  function measure() {
    let height = 0;
    let lines = 0;
    let heads = 0;
    let sections = 0;
    for (const chunk of built) {
      const rows = [...chunk.querySelectorAll(".row")];
      const tall = rows.reduce((total, row) => total + row.offsetHeight, 0);
      height += tall;
      lines += rows.length;
      heads += chunk.offsetHeight - tall;
      sections += chunk.querySelectorAll(".block").length;
    }
    if (!lines) return;
    const row = height / lines;
    const head = sections ? heads / sections : row;  // a head no taller than a row, before one is built
    const board = $("board").style;
    board.setProperty("--row-height", `${row}px`);
    if (sections) board.setProperty("--head-height", `${head}px`);
    board.setProperty("--squeeze", String(Math.min(1, api.room / (shape.lines * row + shape.heads * head))));
  }

  /* The chunks near the window, built before the layout returns, so what is in view is there at once. */
  function buildNear() {
    const columns = across();
    for (const chunk of chunks.keys()) {
      const box = chunk.getBoundingClientRect();
      if (box.top > innerHeight + NEAR) break;
      if (box.bottom < -NEAR || built.has(chunk)) continue;
      build(chunk, columns);
      measure();
    }
  }

  /* The jobs of a row, those from the first column in the grid's visible width on first. */
  function rowKeys(row) {
    const slots = [...row.children].slice(1);
    const first = Math.floor($("grid").scrollLeft / columnStep());
    return [...slots.slice(first), ...slots.slice(0, first)].flatMap((slot) => slotJobs.get(slot).map((job) => job.key));
  }

  /* Where the reader is: the rows in the window under the column heads, top first, each with its
   * jobs and how far down the window it starts. */
  function place() {
    const under = $("grid-head").getBoundingClientRect().bottom;
    return [...$("grid").querySelectorAll(".row")].map((row) => [row, row.getBoundingClientRect()])
      .filter(([, box]) => box.bottom > under && box.top < innerHeight)
      .map(([row, box]) => ({ keys: rowKeys(row), offset: box.top }));
  }

  /* The chunks near the window built, the first of `rows` still shown (the row that now holds
   * one of its jobs, after a Swap, that job's column scrolled into view) put back where it was in
   * the window first: a filter, a Swap or the Size slider keeps the reader's place in a grid of
   * thousands of look-alike rows. */
  function settle(rows) {
    const kept = rows.map(({ keys, offset }) => [keys.find((job) => holder.has(job)), offset])
      .find(([key]) => key !== undefined);
    if (!kept) {
      buildNear();
      return;
    }
    const [key, offset] = kept;
    const chunk = holder.get(key);
    if (!built.has(chunk)) build(chunk, across());
    const row = [...chunk.querySelectorAll(".row")].find((line) => rowKeys(line).includes(key));
    const back = () => scrollBy(0, row.getBoundingClientRect().top - offset);
    back();  // near its place, the chunks around it still as tall as their estimate
    buildNear();
    back();  // in place, those chunks as tall as their rows
    const slots = [...row.children].slice(1);
    const slot = slots.findIndex((one) => slotJobs.get(one).some((job) => job.key === key));
    const [label, box, grid] = [row.firstChild, slots[slot], $("grid")].map((node) => node.getBoundingClientRect());
    if (box.left < label.right || box.right > grid.right) $("grid").scrollLeft = slot * columnStep();
  }

  /* The slots of every row built, filled or emptied for the grid's sideways scroll and cell size. */
  function refill() {
    const columns = across();
    for (const chunk of built) fill(chunk, columns);
  }

  /* `jobs` by the value `by` gives each, in the order met. */
  function groupBy(jobs, by) {
    const groups = new Map();
    for (const job of jobs) {
      const key = by(job);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(job);
    }
    return groups;
  }

  const url = (path) => path.split("/").map(encodeURIComponent).join("/");
  const ratio = (job) => ({ "9:16": "9 / 16", "1:1": "1 / 1" })[job.axes.aspect_ratio] || "16 / 9";

  /* A job failed for now, which the next run takes up by itself, has an amber card and badge,
   * as one still to be done, apart from one failed for good. */
  function cell(job) {
    const state = stateGroup(job);
    const group = classOf(state);
    const picked = picks.has(job.key);
    const playable = state === STATES.done && job.file && !job.missing;
    const media = el("div", {
      class: "media", style: `aspect-ratio: ${ratio(job)}`,
      "data-src": playable ? url(job.file) : null,
      "data-poster": playable && job.poster ? url(job.poster) : null,
    });
    if (playable) {
      if (job.poster) {
        media.append(el("img", { class: "poster", src: url(job.poster), alt: "", loading: "lazy", decoding: "async" }));
      }
      observer.observe(media);
    } else {
      const reason = job.missing ? `the file ${job.file} is missing from the folder`
        : job.reason || "no file recorded";
      media.append(el("div", { class: "status" },
        el("span", { class: `badge ${group}`, text: job.shown_state ? stateLabel(job.shown_state) : "unknown" }),
        el("p", { class: "reason", text: reason })));
    }
    media.append(el("button", {
      type: "button", class: "pick", "aria-pressed": String(picked), title: "Pick this one",
      text: "★", onclick: (event) => togglePick(job, event.currentTarget),
    }));
    const styles = job.styles && job.styles.length ? job.styles.join(" · ") : "no style";
    return el("article", {
      class: `cell ${group}${picked ? " picked" : ""}`, "data-key": job.key,
      "data-state": job.state, title: job.prompt || "",
    }, media, el("div", { class: "meta" },
      el("span", { class: "styles", text: styles }),
      el("span", { class: "figures" }, job.cost_is_estimate
        ? el("span", { class: "estimate", title: "estimated cost",
          text: `est. ${money(job.shown_cost_usd)}` })
        : el("span", {
          class: "cost", text: money(job.shown_cost_usd),
          title: `spent on this job, generations given up on included; estimated ${money(job.estimated_cost_usd)}`,
        }),
        job.render_seconds === null || job.render_seconds === undefined ? null
          : el("span", { class: "time", title: "render time", text: seconds(job.render_seconds) }),
        el("span", { class: "key", text: job.short_key || "" }))));
  }

  function togglePick(job, button) {
    if (picks.has(job.key)) picks.delete(job.key); else picks.add(job.key);
    const picked = picks.has(job.key);
    button.setAttribute("aria-pressed", String(picked));
    button.closest(".cell").classList.toggle("picked", picked);
    savePicks();
  }

  /* Play, pause or step a row's videos together: same time first, then all at once. A video
   * served without byte ranges (`python -m http.server`) seeks only to its start, so there a step
   * leaves the row where it is and the toolbar's note says why; playing starts the row at 0:00. */
  async function syncRow(row, action) {
    const videos = [...row.querySelectorAll(".media[data-src]")].map(load);
    if (!videos.length) return;
    videos.forEach((video) => video.pause());
    const keys = rowKeys(row);
    if (action === "play") keys.forEach((key) => held.delete(key)); else hold(keys, videos);
    if (action === "pause") return;
    await Promise.all(videos.map((video) => ready(video, 1)));
    const now = videos[0].currentTime;
    const to = action === "play" ? now : Math.max(0, now + (action === "next" ? FRAME : -FRAME));
    if (action !== "play" && videos.some((video) => !video.error && !seekable(video, to))) {
      $("step-note").hidden = false;
      return;
    }
    await Promise.all(videos.map((video) => seek(video, to)));
    if (action === "play") await Promise.all(videos.map((video) => video.play().catch(() => {})));
    else hold(keys, videos);
  }

  /* Note the jobs of `keys`, a row's, held where its `videos` are: each at its video's time, those
   * whose video is not made yet (far sideways) at the first one's. */
  function hold(keys, videos) {
    for (const key of keys) held.set(key, videos[0].currentTime);
    for (const video of videos) held.set(keyOf(video), video.currentTime);
  }

  function ready(video, state) {
    if (video.readyState >= state) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { video.removeEventListener("loadedmetadata", done); video.removeEventListener("error", done); resolve(); };
      video.addEventListener("loadedmetadata", done);
      video.addEventListener("error", done);
    });
  }

  /* The time a seek to `time` lands on: within the clip, a millisecond before its end at most. */
  const landing = (video, time) => Math.min(time, (video.duration || time + 1) - 0.001);

  /* Whether a seek to `time` lands within the stretches of the video the browser can seek to. */
  function seekable(video, time) {
    const at = landing(video, time);
    const ranges = video.seekable;
    for (let i = 0; i < ranges.length; i += 1) if (ranges.start(i) <= at && at <= ranges.end(i)) return true;
    return false;
  }

  function seek(video, time) {
    return new Promise((resolve) => {
      video.addEventListener("seeked", resolve, { once: true });
      video.addEventListener("error", resolve, { once: true });
      video.currentTime = landing(video, time);
    });
  }

  function rowControls(row) {
    const button = (label, action, title) => el("button", {
      type: "button", class: `row-${action}`, title, text: label,
      onclick: () => syncRow(row, action),
    });
    return el("div", { class: "row-controls" },
      button("▶", "play", "Play this row in step"), button("❚❚", "pause", "Pause this row"),
      button("‹", "prev", "One frame back"), button("›", "next", "One frame on"));
  }

  function visible(job) {
    if (view.onlyPicks && !picks.has(job.key)) return false;
    if (view.hidden.state.has(stateGroup(job))) return false;
    return AXES.every((axis) => !view.hidden[axis].has(valueKey(job.axes[axis])))
      && Object.entries(view.find).every(([axis, text]) => valueKey(job.axes[axis]).toLowerCase()
        .includes(text.toLowerCase()));
  }

  function chip(text, title) {
    return el("span", { class: "chip", title }, el("span", { class: "chip-axis", text: title }), text);
  }

  /* Lay the grid out: sections by the row axis, one line per combination of the other varying
   * axes, one column per value of the column axis; `rows` (where the reader is) put back in place. */
  function layout(rows = place()) {
    release($("grid"));
    for (const chunk of chunks.keys()) {
      near.unobserve(chunk);
      far.unobserve(chunk);
    }
    chunks.clear();
    built.clear();
    holder.clear();
    const shown = JOBS.filter(visible);
    if (!JOBS.length) {  // no jobs, so no axes to lay out
      $("empty").textContent = EARLIER.length ? "The manifest has none of this folder's jobs now."
        : "This run has no jobs.";
      $("empty").hidden = false;
      showTotals(shown);
      return;
    }
    const byColumn = groupBy(shown, (job) => valueKey(job.axes[view.col]));
    const columns = VALUES[view.col].filter((value) => byColumn.has(value));
    const others = VARYING.filter((axis) => axis !== view.row && axis !== view.col);
    shape = { columns, others, lines: 0, heads: 0 };
    $("board").style.setProperty("--columns", String(Math.max(columns.length, 1)));
    $("board").style.setProperty("--cell", `${view.size}px`);
    const head = el("div", { class: "row head" }, el("div", { class: "label corner", text: `${LABELS[view.row]} ↓  ${LABELS[view.col]} →` }));
    for (const value of columns) {
      // prompts as columns: each one's text under its id, cut short, whole on hover
      const text = view.col === "prompt" && sharedPrompt(byColumn.get(value));
      head.append(el("div", { class: "col-head" }, el("span", { text: value }),
        text && el("p", { class: "col-prompt", title: text, text })));
    }
    $("grid-head").replaceChildren(head);
    const perChunk = Math.max(1, Math.min(CHUNK_LINES, Math.floor(CHUNK_CELLS / columns.length)));
    const fragment = document.createDocumentFragment();
    let few = [];  // sections of a few lines each (a prompt per video), waiting to fill a chunk
    let fewLines = 0;
    const flush = () => {
      if (few.length) fragment.append(sections(few));
      few = [];
      fewLines = 0;
    };
    for (const [value, jobs] of groupBy(shown, (job) => valueKey(job.axes[view.row]))) {
      const lines = [...groupBy(jobs, (job) => JSON.stringify(others.map((axis) => job.axes[axis]))).values()];
      if (lines.length > perChunk) {
        flush();
        fragment.append(section(value, jobs, lines, perChunk));
      } else {
        few.push({ value, jobs, lines });
        fewLines += lines.length;
        if (fewLines >= perChunk) flush();
      }
    }
    flush();
    $("grid").replaceChildren(fragment);
    settle(rows);
    for (const chunk of chunks.keys()) {
      near.observe(chunk);
      far.observe(chunk);
    }
    $("empty").hidden = shown.length > 0;
    showTotals(shown);
    api.layouts += 1;
  }

  /* A section's head: the row axis's value, its jobs' count, done and spent, their shared prompt. */
  function sectionHead(value, jobs) {
    const done = jobs.filter((job) => stateGroup(job) === STATES.done).length;
    const sum = (field) => jobs.reduce((total, job) => total + Number(job[field] || 0), 0);
    const spent = spentText(sum("spent_usd"), sum("spent_estimated_usd"));
    const title = el("div", { class: "section-head" },
      el("span", { class: "section-axis", text: LABELS[view.row] }),
      el("span", { class: "section-value", text: value }),
      el("span", { class: "muted", text: `${jobCount(jobs.length)} · ${done} done · ${spent}` }));
    const text = view.row === "prompt" && view.col !== "prompt" && sharedPrompt(jobs);
    if (text) title.append(el("span", { class: "section-prompt", text }));
    return title;
  }

  /* A placeholder for the rows of `lines` and `heads` section heads, `make` building them. */
  function placeholder(lines, heads, make) {
    const chunk = el("div", { class: "chunk", style: `--lines: ${lines.length}; --heads: ${heads}` });
    chunks.set(chunk, make);
    shape.lines += lines.length;
    shape.heads += heads;
    for (const line of lines) for (const job of line) holder.set(job.key, chunk);
    return chunk;
  }

  /* A section of more lines than a chunk holds: its head, then its lines a chunk at a time. */
  function section(value, jobs, lines, perChunk) {
    const block = el("section", { class: "block", "data-value": value }, sectionHead(value, jobs));
    for (let start = 0; start < lines.length; start += perChunk) {
      const part = lines.slice(start, start + perChunk);
      block.append(placeholder(part, 0, () => part.map(makeRow)));
    }
    return block;
  }

  /* Sections of a few lines each, whole, in one chunk, so a section per prompt of 100,000
   * prompts is built only near the window as rows are. */
  function sections(few) {
    return placeholder(few.flatMap((part) => part.lines), few.length, () => few.map(({ value, jobs, lines }) => el("section",
      { class: "block", "data-value": value }, sectionHead(value, jobs), ...lines.map(makeRow))));
  }

  /* One line of the grid: its label (the other axes' values, the prompt when neither axis is
   * the prompt, the row's play controls), then a slot under each column, filled by `fill`. */
  function makeRow(line) {
    const { columns, others } = shape;
    const row = el("div", { class: "row" });
    const label = el("div", { class: "label" });
    const tags = el("div", { class: "chips" });
    for (const axis of others) tags.append(chip(valueKey(line[0].axes[axis]), LABELS[axis]));
    label.append(tags);
    if (view.row !== "prompt" && view.col !== "prompt") {
      label.append(el("p", { class: "prompt", title: line[0].prompt || "", text: line[0].prompt || "" }));
    }
    label.append(rowControls(row));
    row.append(label);
    const slots = groupBy(line, (job) => valueKey(job.axes[view.col]));
    for (const column of columns) {
      const slot = el("div", { class: "slot" });
      slotJobs.set(slot, slots.get(column) || []);
      row.append(slot);
    }
    return row;
  }

  /* The jobs the current plan no longer has, each with its axes and prompt text (an old text may
   * stand under a prompt id the manifest still has). Closed until opened: the count says they are
   * there. Opened, they come EARLIER_PAGE at a time, whatever the grid's view, and a video far
   * from the window is let go as the grid's are, so a big run whose prompts were edited can be
   * looked through to its end. */
  const EARLIER_PAGE = 100;
  function earlier() {
    $("earlier").hidden = !EARLIER.length;
    if (!EARLIER.length) return;
    const groups = Object.values(STATES).map((state) => [state, EARLIER.filter((job) => stateGroup(job) === state).length])
      .filter(([, count]) => count).map(([state, count]) => `${count} ${stateLabel(state)}`);
    const changed = EARLIER.filter((job) => FRAME_CHANGED.has(job.key)).length;
    $("earlier-count").textContent = `${jobCount(EARLIER.length)} no longer planned: ${groups.join(", ")}`
      + (changed ? `; ${changed} of them made from a start frame that changed since` : "");
    $("earlier").addEventListener("toggle", moreEarlier, { once: true });
    $("earlier-more").addEventListener("click", moreEarlier);
  }

  function moreEarlier() {
    const box = $("earlier-jobs");
    const page = EARLIER.slice(box.childElementCount, box.childElementCount + EARLIER_PAGE)
      .map((job) => el("div", { class: "earlier-job" },
        el("div", { class: "chips" }, ...Object.keys(LABELS).filter((axis) => axis in job.axes)
          .map((axis) => chip(valueKey(job.axes[axis]), LABELS[axis]))),
        el("p", { class: "prompt", text: job.prompt || "" }),
        FRAME_CHANGED.has(job.key) && el("p", { class: "frame-changed", text: frameChanged(job) }),
        cell(job)));
    box.append(...page);
    for (const job of page) far.observe(job);
    const left = EARLIER.length - box.childElementCount;
    $("earlier-more").hidden = !left;
    $("earlier-more").textContent = `Show ${Math.min(left, EARLIER_PAGE)} more (${left} not shown)`;
  }

  /* What an earlier job's start frame was, named by the first 8 hex of its content's SHA-256 and
   * of the content now: `made from start frame beach.png as it was earlier (SHA-256 1a2b3c4d,
   * now 5e6f7a8b): the file changed since`. */
  function frameChanged(job) {
    const [was, now] = FRAME_CHANGED.get(job.key).map((content) => content.slice(0, 8));
    return `made from start frame ${job.axes.start_frame} as it was earlier (SHA-256 ${was}, now ${now}):`
      + " the file changed since";
  }

  /* The totals: `failed` counts every failed job, of which those failed for now are shown apart
   * from those failed for good. */
  function showTotals(shown) {
    const totals = DATA.totals;
    const items = [["jobs", totals.jobs], ["done", totals.done],
      [STATES.failed, totals.failed - totals.failed_for_now], [STATES.failedForNow, totals.failed_for_now],
      ["unfinished", totals.unfinished],
      ["spent", spentText(totals.spent_usd, totals.spent_estimated_usd)],
      ["estimated", money(totals.estimated_usd)], ["shown", shown.length]];
    if (totals.unplanned) items.push(["no longer planned", totals.unplanned]);
    $("totals").replaceChildren(...items.map(([name, value]) => el("div", { class: `total ${classOf(name)}`, title: STATE_TITLES[name] },
      el("dt", { text: stateLabel(name) }), el("dd", { text: String(value) }))));
  }

  function filters() {
    const box = $("filters");
    box.replaceChildren();
    for (const [axis, values] of FILTERS) {
      const group = el("div", { class: "filter", "data-axis": axis }, el("span", { class: "filter-axis", text: LABELS[axis] || axis }));
      box.append(group);
      if (many(values)) {
        group.append(el("input", {
          type: "search", class: "find", value: view.find[axis], "aria-label": `${LABELS[axis]} holds`,
          placeholder: `${values.length.toLocaleString("en")} values: type part of one`,
          oninput: (event) => { view.find[axis] = event.currentTarget.value; writeHash(); layout(); },
        }));
        continue;
      }
      for (const value of values) {
        group.append(el("button", {
          type: "button", class: "value", "aria-pressed": String(!view.hidden[axis].has(value)),
          "data-value": value, text: axis === "state" ? stateLabel(value) : value,
          title: axis === "state" ? STATE_TITLES[value] : null,
          onclick: (event) => {
            const hidden = view.hidden[axis];
            if (hidden.has(value)) hidden.delete(value); else hidden.add(value);
            event.currentTarget.setAttribute("aria-pressed", String(!hidden.has(value)));
            writeHash(); layout();
          },
        }));
      }
    }
  }

  /* The Rows and Columns lists, the view's axes chosen. */
  function axisLists() {
    for (const [select, chosen] of [[$("row-axis"), view.row], [$("col-axis"), view.col]]) {
      select.replaceChildren(...AXES.map((axis) => el("option", {
        value: axis, selected: axis === chosen, text: LABELS[axis] + (VARYING.includes(axis) ? "" : " (one value)"),
      })));
    }
  }

  function controls() {
    const relayout = (row, col) => {
      view.row = row; view.col = col;
      axisLists();
      writeHash(); layout();
    };
    $("row-axis").addEventListener("change", (e) => relayout(e.target.value, e.target.value === view.col ? view.row : view.col));
    $("col-axis").addEventListener("change", (e) => relayout(e.target.value === view.row ? view.col : view.row, e.target.value));
    $("swap-axes").addEventListener("click", () => relayout(view.col, view.row));
    $("cell-size").addEventListener("input", (e) => {
      const rows = place();
      view.size = Number(e.target.value);
      $("board").style.setProperty("--cell", `${view.size}px`);
      refill();
      measure();
      settle(rows);
    });
    // the column heads, which stick under the toolbar, follow the grid scrolled sideways, and
    // the slots coming near the window are filled
    $("grid").addEventListener("scroll", () => {
      $("grid-head").scrollLeft = $("grid").scrollLeft;
      refill();
    });
    $("autoplay").addEventListener("change", (e) => {
      view.autoplay = e.target.checked;
      for (const video of $("grid").querySelectorAll("video")) video.pause();
      for (const media of $("grid").querySelectorAll(".media[data-src]")) {
        observer.unobserve(media);
        observer.observe(media);
      }
    });
    // back from the picks, the reader is where they were before them
    let away = [];
    $("only-picks").addEventListener("change", (e) => {
      view.onlyPicks = e.target.checked;
      if (view.onlyPicks) {
        away = place();
        layout();
      } else {
        layout(away);
      }
    });
    $("export-picks").addEventListener("click", exportPicks);
    $("clear-picks").addEventListener("click", () => { picks.clear(); savePicks(); layout(); });
  }

  function header() {
    $("run-name").textContent = RUN.name;
    const bits = [RUN.out];
    if (RUN.started_at) bits.push(`started ${RUN.started_at.replace("T", " ").replace(/\.\d+/, "")}`);
    if (RUN.duration_seconds !== null && RUN.duration_seconds !== undefined) bits.push(`took ${seconds(RUN.duration_seconds)}`);
    if (RUN.exit_code !== null && RUN.exit_code !== undefined) bits.push(`exit ${RUN.exit_code}${RUN.exit_reason ? `: ${RUN.exit_reason}` : ""}`);
    $("run-meta").textContent = bits.join(" · ");
  }

  const api = {
    layouts: 0,
    readyAt: null,
    // how tall the placeholders may make the page: under Chromium's 33,554,432 px, with room to
    // spare for the rows built near the window at their own height
    room: 30000000,
  };
  window.hailuoReport = api;

  /* The column heads stick just under the toolbar, whose height depends on how it wraps. */
  new ResizeObserver(([entry]) => document.documentElement.style.setProperty(
    "--toolbar", `${Math.ceil(entry.target.getBoundingClientRect().height)}px`)).observe(document.querySelector(".toolbar"));

  header();
  controls();
  savePicks();
  earlier();
  applyHash();
  addEventListener("hashchange", applyHash);
  api.readyAt = performance.now();
  document.documentElement.dataset.ready = "true";
})();
