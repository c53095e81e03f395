/**
 * The demo board: lists as columns, items kept current in every window by rtbridge.
 *
 * Each column is a live list of the `todo-item` route filtered by its `todo_list_id`, so a
 * moved item leaves one column (`left`) and enters another (`entered`). The columns come from
 * a live list of `todo-list`. Editing an item's text joins its presence channel
 * (`presence-todo.todoitem.<id>`) until the field loses focus, so two people editing the same
 * item see each other.
 * @module todo/board
 */

const STATE_LABELS = {
  connecting: "connecting…",
  connected: "live",
  reconnecting: "reconnecting…",
  disconnected: "offline",
};

/** Return a new element `tag` with `props` (attributes, `class`, `text`, `dataset`) and children. */
function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/**
 * Put `child` at position `index` of `parent`, touching the DOM only when it is elsewhere:
 * moving a node blurs it, and the field someone is typing in must keep its focus.
 */
function placeAt(parent, child, index) {
  const current = parent.children[index] ?? null;
  if (current !== child) parent.insertBefore(child, current);
}

/** Return "Ann", "Ann and Ben" or "Ann, Ben and Cy". */
function joinNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/**
 * Start the board on `rt` (a connected rtbridge client) for the user `me` ({id, name}).
 * @param {any} rt
 * @param {{id: string, name: string}} me
 */
export function startBoard(rt, me) {
  const board = document.getElementById("board");
  const addColumn = board.querySelector(".add-column");
  const columns = new Map(); // list id → {element, list, items: LiveList, rows}
  const itemElements = new Map(); // item id → element
  let lists = [];

  // Connection state -------------------------------------------------------------------------

  const badge = document.getElementById("state");
  rt.onState((state) => {
    badge.dataset.state = state;
    badge.querySelector(".label").textContent = STATE_LABELS[state] ?? state;
    document.body.classList.toggle("offline", state !== "connected");
  });

  function toast(message, kind = "error") {
    const element = h("div", { class: `toast ${kind}`, role: "status", text: message });
    document.getElementById("toasts").append(element);
    setTimeout(() => element.remove(), 5000);
  }

  /** Run a data call; a refusal becomes a toast (the live lists stay as the server has them). */
  function write(promise, what) {
    return promise.catch((error) => {
      console.warn(`rtbridge demo: ${what}`, error);
      const fields = error.fields ? Object.values(error.fields).flat().join(" ") : "";
      toast(`Could not ${what}: ${fields || error.reason || error.message}`);
    });
  }

  // Who has the board open -------------------------------------------------------------------

  const online = document.getElementById("online");
  const viewers = rt.join("todo.board");
  const show = () => {
    const members = viewers.members();
    online.replaceChildren(
      ...members.map((member) => {
        const name = member.info?.name ?? String(member.id);
        const initial = name[0].toUpperCase();
        return h("span", { class: "avatar", dataset: { initial }, title: `${name} has the board open`, text: initial });
      }),
    );
  };
  viewers.here(show).joining(show).leaving(show);
  viewers.onError((error) => console.warn("rtbridge demo: board presence", error));

  // Lists ------------------------------------------------------------------------------------

  const listsLive = rt.liveList("todo-list", {}, { order: "id" });
  listsLive.onError((error) => toast(`Could not load the lists: ${error.reason ?? error.message}`));
  let listsLoaded = false;
  listsLive.onChange((rows) => {
    lists = rows;
    listsLoaded = true;
    const seen = new Set();
    for (const list of rows) {
      seen.add(String(list.id));
      const column = columns.get(String(list.id)) ?? addListColumn(list);
      column.list = list;
      const name = column.element.querySelector(".list-name");
      if (document.activeElement !== name) name.value = list.name;
      placeAt(board, column.element, seen.size - 1); // the columns in list order
    }
    for (const [id, column] of columns) {
      if (!seen.has(id)) {
        column.items.close();
        column.element.remove();
        columns.delete(id);
      }
    }
    for (const element of itemElements.values()) fillMoveOptions(element);
    updateReady();
  });

  document.getElementById("add-list").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.name;
    const name = input.value.trim();
    if (!name) return;
    input.value = "";
    write(rt.create("todo-list", { name }), "add the list");
  });

  function addListColumn(list) {
    const id = String(list.id);
    const itemsElement = h("ul", { class: "items" });
    let nameAtFocus = null;
    const nameInput = h("input", {
      class: "list-name",
      value: list.name,
      maxlength: "80",
      "aria-label": "List name",
      onfocus: () => (nameAtFocus = nameInput.value),
      onblur: () => {
        if (nameInput.value === nameAtFocus) nameInput.value = columns.get(id)?.list.name ?? nameInput.value;
      },
      onchange: () => {
        const name = nameInput.value.trim();
        const column = columns.get(id);
        if (!name) return void (nameInput.value = column.list.name);
        if (name !== column.list.name) write(rt.update("todo-list", { id: list.id, name }), "rename the list");
      },
      onkeydown: (event) => {
        if (event.key === "Enter") nameInput.blur();
        if (event.key === "Escape") {
          nameInput.value = columns.get(id).list.name;
          nameInput.blur();
        }
      },
    });
    const addInput = h("input", { name: "text", placeholder: "+ Add an item", maxlength: "200", "aria-label": "New item", autocomplete: "off" });
    const element = h(
      "section",
      { class: "column list", dataset: { listId: id } },
      h(
        "header",
        { class: "column-head" },
        nameInput,
        h("span", { class: "count" }),
        h("button", {
          class: "icon delete-list",
          type: "button",
          title: "Delete this list and its items",
          "aria-label": "Delete list",
          text: "×",
          onclick: () => write(rt.delete("todo-list", { id: list.id }), "delete the list"),
        }),
      ),
      itemsElement,
      h(
        "form",
        {
          class: "add-form add-item",
          onsubmit: (event) => {
            event.preventDefault();
            const text = addInput.value.trim();
            if (!text) return;
            addInput.value = "";
            write(rt.create("todo-item", { todo_list_id: list.id, text }), "add the item");
          },
        },
        addInput,
      ),
    );
    // Drag an item onto a column to move it there.
    element.addEventListener("dragover", (event) => {
      if (!event.dataTransfer.types.includes("application/x-todo-item")) return;
      event.preventDefault();
      element.classList.add("drop-target");
    });
    element.addEventListener("dragleave", (event) => {
      if (!element.contains(event.relatedTarget)) element.classList.remove("drop-target");
    });
    element.addEventListener("drop", (event) => {
      element.classList.remove("drop-target");
      const itemId = event.dataTransfer.getData("application/x-todo-item");
      if (!itemId) return;
      event.preventDefault();
      moveItem(itemId, list.id);
    });

    const column = { element, list, items: null, rows: [], loaded: false };
    columns.set(id, column);
    column.items = rt.liveList("todo-item", { todo_list_id: list.id }, { order: "id" });
    column.items.onError((error) => toast(`Could not load "${column.list.name}": ${error.reason ?? error.message}`));
    column.items.onChange((rows) => {
      column.rows = rows;
      column.loaded = true;
      renderItems(column);
      updateReady();
    });
    return column;
  }

  function updateReady() {
    const ready = listsLoaded && [...columns.values()].every((column) => column.loaded);
    board.setAttribute("aria-busy", String(!ready));
    document.body.dataset.ready = ready ? "yes" : "no";
  }

  // Items ------------------------------------------------------------------------------------

  function renderItems(column) {
    const list = column.element.querySelector(".items");
    const ids = new Set();
    for (const [index, row] of column.rows.entries()) {
      const id = String(row.id);
      ids.add(id);
      let element = itemElements.get(id);
      if (!element) {
        element = itemElement(row);
        itemElements.set(id, element);
      }
      fillItem(element, row);
      placeAt(list, element, index); // moves it here (from another column too), in row order
    }
    for (const element of [...list.children]) {
      if (!ids.has(element.dataset.itemId)) {
        // Gone from this column: deleted, or moved and not yet entered elsewhere.
        element.remove();
        if (![...columns.values()].some((other) => other.rows.some((row) => String(row.id) === element.dataset.itemId))) {
          stopEditing(element);
          itemElements.delete(element.dataset.itemId);
        }
      }
    }
    const done = column.rows.filter((row) => row.done).length;
    column.element.querySelector(".count").textContent = column.rows.length ? `${done}/${column.rows.length}` : "";
    list.classList.toggle("empty", column.rows.length === 0);
  }

  function itemElement(row) {
    const id = String(row.id);
    const text = h("input", {
      class: "item-text",
      maxlength: "200",
      "aria-label": "Item text",
      onfocus: () => {
        element.focusValue = text.value;
        startEditing(element);
      },
      onblur: () => {
        // Left without a change: show what others saved meanwhile (it was not overwritten
        // while this field had focus).
        if (text.value === element.focusValue) text.value = element.row.text;
        stopEditing(element);
      },
      onchange: () => {
        const value = text.value.trim();
        if (!value) return void (text.value = element.row.text);
        if (value !== element.row.text) write(rt.update("todo-item", { id: row.id, text: value }), "save the item");
      },
      onkeydown: (event) => {
        if (event.key === "Enter") text.blur();
        if (event.key === "Escape") {
          text.value = element.row.text;
          text.blur();
        }
      },
    });
    const done = h("input", {
      class: "item-done",
      type: "checkbox",
      "aria-label": "Done",
      onchange: () => write(rt.update("todo-item", { id: row.id, done: done.checked }), "update the item"),
    });
    const move = h("select", {
      class: "item-move",
      "aria-label": "Move to list",
      title: "Move to another list",
      onchange: () => moveItem(id, move.value),
    });
    const handle = h("span", { class: "handle", title: "Drag to another list", "aria-hidden": "true", text: "⋮⋮" });
    const element = h(
      "li",
      { class: "item", dataset: { itemId: id }, draggable: "true" },
      h(
        "div",
        { class: "item-row" },
        handle,
        h("label", { class: "check" }, done, h("span", { class: "box", "aria-hidden": "true" })),
        text,
        move,
        h("button", {
          class: "icon item-delete",
          type: "button",
          title: "Delete",
          "aria-label": "Delete item",
          text: "×",
          onclick: () => write(rt.delete("todo-item", { id: row.id }), "delete the item"),
        }),
      ),
      h("p", { class: "item-presence", hidden: true }),
    );
    element.addEventListener("dragstart", (event) => {
      if (event.target !== element || document.activeElement === text) return event.preventDefault();
      event.dataTransfer.setData("application/x-todo-item", id);
      event.dataTransfer.effectAllowed = "move";
      element.classList.add("dragging");
    });
    element.addEventListener("dragend", () => element.classList.remove("dragging"));
    element.row = row;
    return element;
  }

  function fillItem(element, row) {
    element.row = row;
    const text = element.querySelector(".item-text");
    // Never overwrite what someone is typing; their change is saved when they leave the field.
    if (document.activeElement !== text) text.value = row.text;
    element.querySelector(".item-done").checked = Boolean(row.done);
    element.classList.toggle("done", Boolean(row.done));
    fillMoveOptions(element);
  }

  function fillMoveOptions(element) {
    const move = element.querySelector(".item-move");
    if (document.activeElement === move) return;
    move.replaceChildren(...lists.map((list) => h("option", { value: String(list.id), text: list.name })));
    move.value = String(element.row.todo_list_id);
  }

  function moveItem(itemId, listId) {
    const element = itemElements.get(String(itemId));
    if (!element || String(element.row.todo_list_id) === String(listId)) return;
    write(rt.update("todo-item", { id: Number(itemId), todo_list_id: Number(listId) }), "move the item");
  }

  // Presence: who else is editing this item --------------------------------------------------

  function startEditing(element) {
    if (element.presence) return;
    const channel = rt.join(`todo.todoitem.${element.dataset.itemId}`);
    element.presence = channel;
    const show = () => {
      if (element.presence !== channel) return;
      const others = channel.members().filter((member) => String(member.id) !== me.id);
      const notice = element.querySelector(".item-presence");
      const names = others.map((member) => member.info?.name ?? `user ${member.id}`);
      notice.textContent = names.length ? `${joinNames(names)} ${names.length > 1 ? "are" : "is"} also editing this item` : "";
      notice.hidden = names.length === 0;
      element.classList.toggle("contended", names.length > 0);
    };
    channel.here(show).joining(show).leaving(show);
    channel.onError((error) => console.warn("rtbridge demo: item presence", error));
  }

  function stopEditing(element) {
    const channel = element.presence;
    if (!channel) return;
    element.presence = null;
    channel.leave();
    const notice = element.querySelector(".item-presence");
    notice.hidden = true;
    notice.textContent = "";
    element.classList.remove("contended");
  }
}
