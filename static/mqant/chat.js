/*
 * The chat page. Accounts go through the REST API (/api/auth/..., the session and its CSRF
 * token); the chat through MQTT with mqant.js: Login/HD_Login binds the connection to the
 * user, Chat/HD_JoinChat, Chat/HD_Say, Chat/HD_LeaveChat, and the pushes Chat/OnChat,
 * Chat/OnJoin, Chat/OnLeave. After a drop mqant.js reconnects with backoff and this page logs
 * in again and rejoins its rooms; the rooms (not the password) also survive a reload.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var config = document.body.dataset; // data-user (the session's user), data-api-*
  var MQTT_VERSION = /[?&]mqtt=3(&|$)/.test(location.search) ? 3 : 4;
  // ?ws=listener: MQTT over the gate's own WebSocket listener (WS_ADDR, mqant's WSAddr, whose
  // port the server puts in data-ws-port) on this page's host, rather than this page's port.
  var WS = new URLSearchParams(location.search).get("ws");
  var WS_PROBLEM = WS === null ? ""
    : WS !== "listener" ? "Unknown ?ws=" + WS + ": leave it out, or use ?ws=listener."
    : !config.wsPort ? "This server has no WebSocket listener of its own (WS_ADDR is off): " +
      "open the page without ?ws=listener."
    : location.hostname.charAt(0) === "[" ? "The page's CSP cannot name an IPv6 address: " +
      "open it by a host name to use ?ws=listener."
    : "";
  var STORE_KEY = "mqant.rooms."; // + the user name: the rooms this tab is in
  var KEEP = 200; // messages kept per room

  var state = { user: null, password: null, rooms: new Map(), active: null };

  // REST

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function post(url, body) {
    var init = { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() } };
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function errorText(result) {
    var data = result.data || {};
    if (typeof data.detail === "string") return data.detail;
    var parts = Object.keys(data).map(function (field) {
      var messages = [].concat(data[field]).join(" ");
      return field === "non_field_errors" ? messages : field + ": " + messages;
    });
    return parts.join(" ") || "The server said " + result.status + ".";
  }

  // Views

  function setStatus(name, text) {
    $("status").dataset.state = name;
    $("status").textContent = text || name;
    var online = name === "online";
    $("content").disabled = $("send").disabled = !online;
    $("room-name").disabled = !online;
  }

  function showLogin(error) {
    $("login-view").hidden = false;
    $("chat-view").hidden = $("me").hidden = $("logout").hidden = true;
    $("login-error").hidden = !error;
    $("login-error").textContent = error || "";
    setBusy(false);
    ($("username").value ? $("password") : $("username")).focus();
  }

  function showChat() {
    $("login-view").hidden = true;
    $("chat-view").hidden = $("me").hidden = $("logout").hidden = false;
    $("me").textContent = state.user;
    render();
  }

  function setBusy(busy) {
    $("login").disabled = $("register").disabled = busy;
  }

  function timeOf(value) {
    var date = typeof value === "number" ? new Date(value < 1e12 ? value * 1000 : value)
      : value ? new Date(value) : new Date();
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function messageItem(entry) {
    var item = element("li", entry.notice ? "notice" : entry.target !== "*" ? "private" : "");
    item.appendChild(element("time", "", timeOf(entry.time)));
    if (entry.notice) {
      item.appendChild(document.createTextNode(" " + entry.notice));
      return item;
    }
    var label = entry.from;
    if (entry.target !== "*") label += entry.from === state.user ? " → " + entry.target : " (to you)";
    item.appendChild(document.createTextNode(" "));
    item.appendChild(element("span", "from", label + ":"));
    item.appendChild(document.createTextNode(" " + entry.msg));
    return item;
  }

  function render() {
    var tabs = $("room-tabs");
    tabs.textContent = "";
    state.rooms.forEach(function (room, name) {
      var button = element("button", "", name);
      button.type = "button";
      button.setAttribute("aria-current", String(name === state.active));
      if (room.unread) button.appendChild(element("span", "unread", String(room.unread)));
      button.addEventListener("click", function () { activate(name); });
      var li = element("li");
      li.appendChild(button);
      tabs.appendChild(li);
    });
    var room = state.rooms.get(state.active);
    $("room").hidden = !room;
    $("no-room").hidden = Boolean(room);
    if (!room) return;
    $("room-title").textContent = state.active;
    renderMembers(room);
    var list = $("messages");
    list.textContent = "";
    room.messages.forEach(function (entry) { list.appendChild(messageItem(entry)); });
    list.scrollTop = list.scrollHeight;
  }

  function renderMembers(room) {
    var members = $("members");
    var target = $("target");
    var chosen = target.value;
    members.textContent = "";
    target.length = 1; // keep "Everyone"
    Array.from(room.members).sort().forEach(function (user) {
      var self = user === state.user;
      var li = element("li", self ? "self" : "");
      var button = element("button", "", self ? user + " (you)" : user);
      button.type = "button";
      button.dataset.user = user;
      if (!self) {
        button.title = "Talk to " + user + " only";
        button.addEventListener("click", function () { target.value = user; $("content").focus(); });
        target.appendChild(new Option(user, user));
      }
      li.appendChild(button);
      members.appendChild(li);
    });
    target.value = room.members.has(chosen) && chosen !== state.user ? chosen : "*";
    $("member-count").textContent = String(room.members.size + room.unlisted);
  }

  function activate(name) {
    state.active = name;
    var room = state.rooms.get(name);
    if (room) room.unread = 0;
    save();
    render();
  }

  function append(roomName, entry) {
    var room = state.rooms.get(roomName);
    if (!room) return;
    room.messages.push(entry);
    if (room.messages.length > KEEP) room.messages.shift();
    if (!entry.notice && entry.target === "*") room.seen.push([entry.from, entry.msg]);
    if (room.seen.length > KEEP) room.seen.shift();
    if (roomName === state.active) {
      var list = $("messages");
      var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.appendChild(messageItem(entry));
      if (list.children.length > KEEP) list.removeChild(list.firstChild);
      if (atBottom || entry.from === state.user) list.scrollTop = list.scrollHeight;
    } else if (!entry.notice) {
      room.unread += 1;
      render();
    }
  }

  // The history a join returns, minus what this page already showed: the longest start of
  // the history that ends the way the page's own record ends has been seen.
  function unseen(seen, history) {
    for (var end = history.length; end > 0; end -= 1) {
      var overlap = Math.min(end, seen.length);
      var same = overlap > 0;
      for (var i = 1; same && i <= overlap; i += 1) {
        var h = history[end - i], s = seen[seen.length - i];
        same = h.from === s[0] && h.msg === s[1];
      }
      if (same) return history.slice(end);
    }
    return history;
  }

  function save() {
    var data = { rooms: Array.from(state.rooms.keys()), active: state.active };
    sessionStorage.setItem(STORE_KEY + state.user, JSON.stringify(data));
  }

  function saved() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE_KEY + state.user)) || { rooms: [] };
    } catch (e) {
      return { rooms: [] };
    }
  }

  // MQTT

  function reply(message) {
    try {
      return JSON.parse(message.payloadString);
    } catch (e) {
      return { Error: "unreadable reply", Result: null };
    }
  }

  function connect() {
    setStatus("connecting", "connecting…");
    mqant.init({
      mqttVersion: MQTT_VERSION,
      port: WS === "listener" ? config.wsPort : undefined, // ws[s]://<this host>:<port>/mqtt
      onSuccess: logIn,
      onFailure: function () {
        if (!$("chat-view").hidden) return;
        $("login-error").textContent = "The chat server cannot be reached; trying again…";
        $("login-error").hidden = false;
        setBusy(false);
      },
      onConnectionLost: function () { setStatus("reconnecting", "connection lost"); },
      onReconnecting: function (delay) {
        setStatus("reconnecting", "reconnecting in " + Math.ceil(delay / 1000) + " s…");
      },
    });
  }

  function logIn(info) {
    setStatus("connecting", "logging in…");
    var credentials = { userName: state.user, passWord: state.password };
    mqant.request("Login/HD_Login", credentials, function (message) {
      var answer = reply(message);
      if (answer.Error) {
        if (info.reconnect) return setStatus("offline", "login failed: " + answer.Error);
        mqant.destroy();
        return showLogin(answer.Error);
      }
      setStatus("online");
      if (!info.reconnect) {
        var place = saved();
        place.rooms.forEach(function (name) { addRoom(name); });
        var first = state.rooms.keys().next().value || null;
        state.active = state.rooms.has(place.active) ? place.active : first;
        showChat();
      }
      state.rooms.forEach(function (room, name) { join(name, info.reconnect, false); });
      listRooms();
    });
  }

  // The rooms that exist (REST: the first page, the most recently active), offered as
  // suggestions for the room name.
  function listRooms() {
    fetch("/api/rooms/", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (rooms) {
        var list = $("room-list");
        list.replaceChildren();
        (rooms.results || rooms).forEach(function (room) {
          var option = document.createElement("option");
          option.value = room.name;
          option.label = room.name + " · " + room.members_online + " online";
          list.appendChild(option);
        });
      })
      .catch(function () { /* suggestions only: the page works without them */ });
  }

  function addRoom(name) {
    if (!state.rooms.has(name)) {
      state.rooms.set(name, { members: new Set(), unlisted: 0, messages: [], seen: [], unread: 0 });
    }
    return state.rooms.get(name);
  }

  // Pushes for a room whose join is under way wait for the join's reply: the reply's members
  // and history are a snapshot, and a push may overtake it.
  var joining = new Map(); // room name -> [[handler, event], ...]

  // Join (or, after a reconnect, rejoin) a room; "show" makes it the room on screen.
  function join(name, again, show) {
    joining.set(name, []);
    mqant.request("Chat/HD_JoinChat", { roomName: name }, function (message) {
      var answer = reply(message);
      var waited = joining.get(name) || [];
      joining.delete(name);
      $("chat-error").hidden = !answer.Error;
      if (answer.Error) {
        $("chat-error").textContent = "Could not join " + name + ": " + answer.Error;
        return;
      }
      var room = addRoom(name);
      var result = answer.Result || {};
      var history = result.history || [];
      room.members = new Set(result.users || []);
      // A join lists at most a thousand members; userCount says how many there are in all.
      room.unlisted = Math.max((result.userCount || 0) - room.members.size, 0);
      unseen(room.seen, history).forEach(function (h) {
        append(name, { from: h.from, target: "*", msg: h.msg, time: h.time });
      });
      if (again) append(name, { notice: "reconnected" });
      var skip = inHistory(waited, history);
      waited.forEach(function (push) {
        if (push[0] === said && push[1].target === "*" && skip > 0) skip -= 1;
        else push[0](push[1]);
      });
      if (show || !state.active) state.active = name;
      save();
      render();
    });
  }

  // How many of the broadcasts that came during a join the history already ends with.
  function inHistory(waited, history) {
    var broadcasts = waited.filter(function (p) { return p[0] === said && p[1].target === "*"; });
    for (var k = Math.min(broadcasts.length, history.length); k > 0; k -= 1) {
      var tail = history.slice(history.length - k);
      var same = tail.every(function (h, i) {
        return h.from === broadcasts[i][1].from && h.msg === broadcasts[i][1].msg;
      });
      if (same) return k;
    }
    return 0;
  }

  function said(event) {
    append(event.roomName, { from: event.from, target: event.target || "*", msg: event.msg });
  }

  function joined(event) {
    var room = state.rooms.get(event.roomName);
    if (!room) return;
    room.members.add(event.user);
    if (event.roomName === state.active) renderMembers(room);
    append(event.roomName, { notice: event.user + " joined" });
  }

  function left(event) {
    var room = state.rooms.get(event.roomName);
    if (!room) return;
    if (!room.members.delete(event.user) && room.unlisted > 0) room.unlisted -= 1;
    if (event.roomName === state.active) renderMembers(room);
    append(event.roomName, { notice: event.user + " left" });
  }

  [["Chat/OnChat", said], ["Chat/OnJoin", joined], ["Chat/OnLeave", left]].forEach(function (t) {
    mqant.on(t[0], function (message) {
      var event = reply(message);
      var waiting = joining.get(event.roomName);
      if (waiting) waiting.push([t[1], event]);
      else t[1](event);
    });
  });

  // Forms

  function enter(kind) {
    var username = $("username").value.trim();
    var password = $("password").value;
    if (WS_PROBLEM) return showLogin(WS_PROBLEM);
    if (!username || !password) return showLogin("Enter a user name and a password.");
    setBusy(true);
    post(config[kind], { username: username, password: password }).then(function (result) {
      if (!result.ok) return showLogin(errorText(result));
      state.user = result.data.user.username;
      state.password = password; // kept in memory only, to log in again after a reconnect
      $("password").value = "";
      connect();
    }, function () { showLogin("The server cannot be reached."); });
  }

  $("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    enter("apiLogin");
  });
  $("register").addEventListener("click", function () { enter("apiRegister"); });

  $("join-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var name = $("room-name").value.trim();
    if (!name) return;
    $("room-name").value = "";
    if (state.rooms.has(name)) return activate(name);
    if (!joining.has(name)) join(name, false, true);
  });

  $("say-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = $("content");
    var text = input.value.trim();
    var roomName = state.active;
    var target = $("target").value;
    if (!text || !roomName) return;
    var body = { roomName: roomName, content: text, target: target };
    mqant.request("Chat/HD_Say", body, function (message) {
      var answer = reply(message);
      if (answer.Error) return append(roomName, { notice: "Not sent (" + answer.Error + "): " + text });
      // Everyone's messages come back as Chat/OnChat; one to a single user goes to them only.
      if (target !== "*") append(roomName, { from: state.user, target: target, msg: text });
    });
    input.value = "";
  });

  $("leave").addEventListener("click", function () {
    var name = state.active;
    mqant.request("Chat/HD_LeaveChat", { roomName: name }, function () {});
    state.rooms.delete(name);
    state.active = state.rooms.keys().next().value || null;
    save();
    render();
  });

  $("logout").addEventListener("click", function () {
    post(config.apiLogout, {}).finally(function () {
      mqant.destroy();
      sessionStorage.removeItem(STORE_KEY + state.user);
      state = { user: null, password: null, rooms: new Map(), active: null };
      setStatus("offline");
      showLogin();
    });
  });

  window.addEventListener("online", function () { mqant.retryNow(); });

  setStatus("offline");
  // The browser's session may still be logged in (the page says who): only the password, kept
  // in no storage, is asked again.
  if (config.user && !$("username").value) $("username").value = config.user;
  showLogin(WS_PROBLEM);
})();
