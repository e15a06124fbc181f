/*
 * The Hitball page: mqant's Hitball game on a canvas, as a guest, over MQTT with mqant.js.
 *
 * Hitball/HD_Join (a request) answers {Rid, Player, Coins}: this page's Rid, every player by
 * Rid, every coin by Id (the Hitball/OnEnter push carries the same, for a server that answers
 * "success" as mqant's does). Then the pushes: Hitball/OnJoin (a player), Hitball/OnMove
 * (every player, a few times a second: positions snap to it, players it lacks are gone),
 * Hitball/OnAddCoins and Hitball/OnEatCoins (a coin). Between two OnMoves every ball moves
 * here as the server moves it (hitball/world.py), frame by frame (22 ms): off the walls, on
 * by its speed, slowed by friction 0.99, its arrow turning 3 degrees a frame.
 *
 * Controls: hold (mouse, finger or Space) to charge, release to fire along the arrow
 * (Hitball/HD_Fire {Angle, Power, X, Y}); arrows, WASD or a drag move the ball
 * (Hitball/HD_Move {war, wid, x, y}, at most ten a second); the ball touching a coin eats it
 * (Hitball/HD_EatCoin {Id}, once a coin). After a drop mqant.js reconnects and the page joins
 * again. window.hitball.state() is a copy of what the page knows, for tests and tools.
 */
(function () {
  "use strict";

  var WORLD = 1280; // the world is WORLD x WORLD
  var RADIUS = 20; // a ball's
  var COIN_RADIUS = 10;
  var FRICTION = 0.99;
  var TURN = 3; // degrees an arrow turns a frame
  var DEG = 0.0174532925; // the server's degrees-to-radians, so that both compute alike
  var FRAME_MS = 22; // the server's frame
  var MAX_CATCH_UP = 12; // frames run in one animation frame at most (a stall: OnMove snaps)
  var MIN_POWER = 50;
  var MAX_POWER = 200;
  var MAX_SPEED = 60; // px a frame: the server caps a shot's speed there
  var MOVE_STEP = 5; // px a frame while steering at full speed
  var MOVE_EVERY_MS = 100; // Hitball/HD_Move at most ten times a second
  var STEER_HOLD_MS = 400; // after a move, this page's own position wins over OnMove's
  var DRAG_START = 12; // px a press travels before it is a drag (a move), not a shot
  var DRAG_FULL = 60; // px of drag for full speed
  var MAX_PLAYERS = 256; // kept from one push; more are not drawn
  var MAX_COINS = 256;
  var MAX_GONE = 4096; // eaten coin ids remembered (ids are never reused)
  var MAX_ID_LENGTH = 64;
  var JOIN_RETRY_MS = [2000, 5000, 10000, 30000];
  var ENTER_WAIT_MS = 10000; // a "success" reply: Hitball/OnEnter should follow by then
  var LOST_AFTER = 3; // OnMoves without this page's ball before it joins again

  var $ = function (id) { return document.getElementById(id); };
  var config = document.body.dataset; // data-ws-port
  var params = new URLSearchParams(location.search);
  var MQTT_VERSION = params.get("mqtt") === "3" ? 3 : 4;
  // ?ws=listener: MQTT over the gate's own WebSocket listener (mqant's port 3653), whose port
  // the server puts in data-ws-port, rather than over this page's port.
  var WS = params.get("ws");
  var WS_PROBLEM = WS === null ? ""
    : WS !== "listener" ? "Unknown ?ws=" + WS + ": leave it out, or use ?ws=listener."
    : !config.wsPort ? "This server has no WebSocket listener of its own: open the page " +
      "without ?ws=listener."
    : location.hostname.charAt(0) === "[" ? "The page's CSP cannot name an IPv6 address: " +
      "open it by a host name to use ?ws=listener."
    : "";

  var canvas = $("world");
  var ctx = canvas.getContext("2d");
  var view = { w: 0, h: 0, dpr: 1, inset: 0, tail: 0 }; // the HUD's height at top, bottom

  var game = {
    status: "offline",
    statusText: "offline",
    problem: "",
    rid: null, // this page's player
    joined: false,
    joinSeq: 0, // the join under way; older replies are stale
    joinTries: 0,
    joinTimer: null,
    missing: 0, // OnMoves in a row without this page's ball
    players: new Map(), // Rid -> {rid, x, y, xSpeed, ySpeed, angle, dir, power}
    coins: new Map(), // Id -> {id, x, y}
    gone: new Set(), // coin ids eaten (by anyone) or reported eaten by this page
    charging: false,
    power: MIN_POWER,
    keys: new Set(), // "left", "right", "up", "down"
    pointer: null, // the press under way: {id, x0, y0, x, y, dragging}
    steerUntil: 0,
    moveDirty: false,
    lastMoveAt: -Infinity,
    eaten: 0, // coins this page ate
    lastEaten: null,
    ignored: 0, // malformed pushes
    sent: { join: 0, fire: 0, move: 0, eat: 0 },
    lastFire: null,
  };

  // Reading what the server sends: anything else is ignored, and said so.

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function number(value, fallback) {
    return typeof value === "number" && isFinite(value) ? value : fallback;
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function round2(value) {
    return Math.round(value * 100) / 100;
  }

  // A Player object (key: the Rid it is filed under, when it has none of its own); null when
  // it is not one.
  function readPlayer(body, key) {
    if (!isObject(body)) return null;
    var rid = typeof body.Rid === "string" ? body.Rid : key;
    var x = number(body.X, NaN);
    var y = number(body.Y, NaN);
    if (typeof rid !== "string" || !rid || rid.length > MAX_ID_LENGTH || isNaN(x) || isNaN(y)) {
      return null;
    }
    return {
      rid: rid,
      x: clamp(x, 0, WORLD),
      y: clamp(y, 0, WORLD),
      xSpeed: clamp(number(body.XSpeed, 0), -WORLD, WORLD),
      ySpeed: clamp(number(body.YSpeed, 0), -WORLD, WORLD),
      angle: number(body.Angle, 0) % 360,
      dir: number(body.RotateDirection, 1) < 0 ? -1 : 1,
      power: clamp(number(body.Power, 0), 0, 10 * MAX_POWER),
    };
  }

  function coinId(body) {
    if (!isObject(body)) return null;
    var id = body.Id;
    return typeof id === "number" && Number.isSafeInteger(id) ? id : null;
  }

  function readCoin(body) {
    var id = coinId(body);
    var x = isObject(body) ? number(body.X, NaN) : NaN;
    var y = isObject(body) ? number(body.Y, NaN) : NaN;
    if (id === null || isNaN(x) || isNaN(y)) return null;
    return { id: id, x: clamp(x, 0, WORLD), y: clamp(y, 0, WORLD) };
  }

  function forget(id) { // a coin that is gone for good
    game.coins.delete(id);
    game.gone.add(id);
    if (game.gone.size > MAX_GONE) game.gone.delete(game.gone.values().next().value);
  }

  function addCoin(coin) {
    if (game.gone.has(coin.id) || game.coins.size >= MAX_COINS) return;
    game.coins.set(coin.id, coin);
  }

  // Status line and problems

  function setStatus(state, text) {
    game.status = state;
    game.statusText = text || state;
    var status = $("status");
    status.dataset.state = state;
    status.textContent = game.statusText;
  }

  var problemTimer = null;

  function showProblem(text, sticky) {
    game.problem = text;
    var line = $("problem");
    line.textContent = text;
    line.hidden = false;
    clearTimeout(problemTimer);
    if (!sticky) {
      problemTimer = setTimeout(function () {
        line.hidden = true;
        game.problem = "";
      }, 8000);
    }
  }

  function ignore(topic, why) {
    game.ignored += 1;
    showProblem("Ignored a malformed " + topic + " (" + why + ").");
  }

  // Joining

  function parseReply(message) {
    try {
      var body = JSON.parse(message.payloadString);
      return isObject(body) ? body : { Error: "unreadable reply", Result: null };
    } catch (e) {
      return { Error: "unreadable reply", Result: null };
    }
  }

  function join() {
    clearTimeout(game.joinTimer);
    var seq = ++game.joinSeq;
    game.joined = false;
    game.missing = 0;
    setStatus("joining", "joining…");
    game.sent.join += 1;
    mqant.request("Hitball/HD_Join", {}, function (message) {
      if (seq !== game.joinSeq) return;
      var answer = parseReply(message);
      if (answer.Error) {
        showProblem("Could not join the game: " + answer.Error);
        return retryJoin();
      }
      if (game.joined) return; // Hitball/OnEnter came first
      if (isObject(answer.Result)) {
        if (!enter(answer.Result)) {
          showProblem("The join's answer is not a game (no Rid).");
          retryJoin();
        }
        return;
      }
      // mqant's own server answers "success" and sends the game as Hitball/OnEnter.
      game.joinTimer = setTimeout(function () {
        if (seq !== game.joinSeq || game.joined) return;
        showProblem("The server sent no game after the join.");
        retryJoin();
      }, ENTER_WAIT_MS);
    });
  }

  function retryJoin() {
    clearTimeout(game.joinTimer);
    game.joinSeq += 1; // a late answer to the failed join is stale
    if (!mqant.connected()) return; // the next connection joins
    var delay = JOIN_RETRY_MS[Math.min(game.joinTries, JOIN_RETRY_MS.length - 1)];
    game.joinTries += 1;
    setStatus("joining", "joining again in " + Math.ceil(delay / 1000) + " s…");
    game.joinTimer = setTimeout(function () {
      if (mqant.connected()) join();
    }, delay);
  }

  // {Rid, Player, Coins}: the game as it is when this page joins.
  function enter(result) {
    if (!isObject(result) || typeof result.Rid !== "string" || !result.Rid ||
        result.Rid.length > MAX_ID_LENGTH) {
      return false;
    }
    if (game.joined && result.Rid === game.rid) return true; // the reply and OnEnter both came
    clearTimeout(game.joinTimer);
    game.rid = result.Rid;
    game.joined = true;
    game.joinTries = 0;
    game.missing = 0;
    game.players = new Map();
    game.coins = new Map();
    var players = isObject(result.Player) ? result.Player : {};
    Object.keys(players).slice(0, MAX_PLAYERS).forEach(function (key) {
      var player = readPlayer(players[key], key);
      if (player) game.players.set(player.rid, player);
    });
    var coins = isObject(result.Coins) ? result.Coins : {};
    Object.keys(coins).slice(0, MAX_COINS).forEach(function (key) {
      var coin = readCoin(coins[key]);
      if (coin) addCoin(coin);
    });
    setStatus("online", "playing as " + game.rid);
    return true;
  }

  // Pushes

  function onEnter(body) {
    return enter(body);
  }

  function onJoin(body) {
    var player = readPlayer(body, null);
    if (!player) return false;
    if (!game.players.has(player.rid) && game.players.size < MAX_PLAYERS) {
      game.players.set(player.rid, player);
    }
    return true;
  }

  function onMove(body) {
    if (!isObject(body)) return false;
    var keys = Object.keys(body).slice(0, MAX_PLAYERS);
    var listed = new Set(keys);
    var bad = 0;
    var now = performance.now();
    keys.forEach(function (key) {
      var update = readPlayer(body[key], key);
      if (!update) {
        bad += 1;
        return;
      }
      listed.add(update.rid);
      var player = game.players.get(update.rid);
      if (!player) {
        game.players.set(update.rid, update);
        return;
      }
      var mine = update.rid === game.rid;
      if (!mine || now > game.steerUntil) {
        player.x = update.x;
        player.y = update.y;
      }
      player.xSpeed = update.xSpeed;
      player.ySpeed = update.ySpeed;
      player.dir = update.dir;
      player.power = update.power;
      if (!mine || !game.charging) player.angle = update.angle;
    });
    game.players.forEach(function (player, rid) {
      if (!listed.has(rid)) game.players.delete(rid);
    });
    if (game.joined && game.rid !== null) {
      game.missing = listed.has(game.rid) ? 0 : game.missing + 1;
      if (game.missing >= LOST_AFTER && mqant.connected()) {
        showProblem("Your ball left the table; joining again.");
        join();
      }
    }
    return bad === 0 || "some players unreadable";
  }

  function onAddCoins(body) {
    var coin = readCoin(body);
    if (!coin) return false;
    addCoin(coin);
    return true;
  }

  function onEatCoins(body) {
    var id = coinId(body);
    if (id === null) return false;
    forget(id);
    return true;
  }

  function listen(topic, handler) {
    mqant.on(topic, function (message) {
      var body;
      try {
        body = JSON.parse(message.payloadString);
      } catch (e) {
        return ignore(topic, "not JSON");
      }
      var done;
      try {
        done = handler(body);
      } catch (e) {
        return ignore(topic, String(e && e.message));
      }
      if (done !== true) ignore(topic, typeof done === "string" ? done : "unexpected shape");
    });
  }

  listen("Hitball/OnEnter", onEnter);
  listen("Hitball/OnJoin", onJoin);
  listen("Hitball/OnMove", onMove);
  listen("Hitball/OnAddCoins", onAddCoins);
  listen("Hitball/OnEatCoins", onEatCoins);

  // Playing

  function own() {
    return game.rid === null ? null : game.players.get(game.rid) || null;
  }

  // Where the player steers: x and y in -1..1, from the keys or the drag under way.
  function steering() {
    var x = 0;
    var y = 0;
    var drag = game.pointer;
    if (drag && drag.dragging) {
      var dx = drag.x - drag.x0;
      var dy = drag.y - drag.y0;
      var length = Math.hypot(dx, dy);
      if (length >= DRAG_START) {
        var speed = Math.min(1, length / DRAG_FULL);
        return { x: dx / length * speed, y: dy / length * speed };
      }
      return { x: 0, y: 0 };
    }
    if (game.keys.has("left")) x -= 1;
    if (game.keys.has("right")) x += 1;
    if (game.keys.has("up")) y -= 1;
    if (game.keys.has("down")) y += 1;
    var norm = Math.hypot(x, y) || 1;
    return { x: x / norm, y: y / norm };
  }

  function steer(now) {
    var me = own();
    var way = steering();
    if (!me || (!way.x && !way.y)) return;
    me.x = clamp(me.x + way.x * MOVE_STEP, RADIUS, WORLD - RADIUS);
    me.y = clamp(me.y + way.y * MOVE_STEP, RADIUS, WORLD - RADIUS);
    game.steerUntil = now + STEER_HOLD_MS;
    game.moveDirty = true;
  }

  // The ball's position, at most every MOVE_EVERY_MS while it is steered, and once after.
  function sendMove(now) {
    var me = own();
    if (!game.moveDirty || !me || now - game.lastMoveAt < MOVE_EVERY_MS) return;
    game.moveDirty = false;
    game.lastMoveAt = now;
    var body = { war: 0, wid: 0, x: round2(me.x), y: round2(me.y) };
    if (mqant.requestNR("Hitball/HD_Move", body)) game.sent.move += 1;
  }

  // One server frame of every ball: walls, speed and friction, the arrow.
  function simulate(now) {
    steer(now);
    game.players.forEach(function (p) {
      // Against a wall: put back on the field, moving away from the wall.
      if (p.x < RADIUS) { p.x = RADIUS; p.xSpeed = Math.abs(p.xSpeed); }
      else if (p.x > WORLD - RADIUS) { p.x = WORLD - RADIUS; p.xSpeed = -Math.abs(p.xSpeed); }
      if (p.y < RADIUS) { p.y = RADIUS; p.ySpeed = Math.abs(p.ySpeed); }
      else if (p.y > WORLD - RADIUS) { p.y = WORLD - RADIUS; p.ySpeed = -Math.abs(p.ySpeed); }
      p.x += p.xSpeed;
      p.y += p.ySpeed;
      p.xSpeed *= FRICTION;
      p.ySpeed *= FRICTION;
      p.angle = (p.angle + TURN * p.dir) % 360;
    });
    if (game.charging) game.power = Math.min(MAX_POWER, game.power + 1);
    eatCoins();
  }

  function eatCoins() {
    var me = own();
    if (!me || !game.joined) return;
    var reach = (RADIUS + COIN_RADIUS) * (RADIUS + COIN_RADIUS);
    game.coins.forEach(function (coin, id) {
      var dx = coin.x - me.x;
      var dy = coin.y - me.y;
      if (dx * dx + dy * dy > reach) return;
      if (!mqant.requestNR("Hitball/HD_EatCoin", { Id: id })) return;
      game.sent.eat += 1;
      game.eaten += 1;
      game.lastEaten = id;
      forget(id);
    });
  }

  function startCharge() {
    if (!own()) return;
    game.charging = true;
    game.power = MIN_POWER;
  }

  function cancelCharge() {
    game.charging = false;
    game.power = MIN_POWER;
  }

  // Fire along the arrow with the power charged; the ball takes the speed here at once, as
  // the server gives it (added to its speed; the arrow then turns the other way).
  function fire() {
    if (!game.charging) return;
    var power = Math.round(clamp(game.power, MIN_POWER, MAX_POWER));
    cancelCharge();
    var me = own();
    if (!me) return;
    var angle = ((me.angle % 360) + 540) % 360 - 180; // -180..180, as mqant's arrow
    var body = { Angle: round2(angle), Power: power, X: round2(me.x), Y: round2(me.y) };
    if (!mqant.requestNR("Hitball/HD_Fire", body)) {
      showProblem("Not connected: the shot was not sent.");
      return;
    }
    game.sent.fire += 1;
    game.lastFire = body;
    me.xSpeed += Math.cos(body.Angle * DEG) * power / 20;
    me.ySpeed += Math.sin(body.Angle * DEG) * power / 20;
    var speed = Math.hypot(me.xSpeed, me.ySpeed);
    if (speed > MAX_SPEED) {
      me.xSpeed *= MAX_SPEED / speed;
      me.ySpeed *= MAX_SPEED / speed;
    }
    me.dir = -me.dir;
    me.power = power;
  }

  // Input: a press charges and its release fires, unless it travels (a drag: it steers).

  canvas.addEventListener("pointerdown", function (event) {
    if (game.pointer || event.button > 0) return;
    event.preventDefault(); // no text selection, no focus change, no emulated mouse events
    try {
      canvas.setPointerCapture(event.pointerId);
    } catch (e) { /* the pointer is gone already */ }
    game.pointer = { id: event.pointerId, x0: event.clientX, y0: event.clientY,
      x: event.clientX, y: event.clientY, dragging: false };
    startCharge();
  });

  canvas.addEventListener("pointermove", function (event) {
    var press = game.pointer;
    if (!press || press.id !== event.pointerId) return;
    press.x = event.clientX;
    press.y = event.clientY;
    if (!press.dragging && Math.hypot(press.x - press.x0, press.y - press.y0) >= DRAG_START) {
      press.dragging = true;
      cancelCharge();
    }
  });

  function release(event) {
    var press = game.pointer;
    if (!press || press.id !== event.pointerId) return;
    game.pointer = null;
    if (event.type === "pointerup" && !press.dragging) fire();
    else if (!press.dragging) cancelCharge();
  }
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("lostpointercapture", release);
  canvas.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  var KEYS = {
    ArrowLeft: "left", KeyA: "left", ArrowRight: "right", KeyD: "right",
    ArrowUp: "up", KeyW: "up", ArrowDown: "down", KeyS: "down", Space: "fire",
  };

  function keyOf(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return null;
    return KEYS[event.code] || null;
  }

  window.addEventListener("keydown", function (event) {
    var key = keyOf(event);
    if (!key) return;
    event.preventDefault();
    if (key !== "fire") game.keys.add(key);
    else if (!event.repeat && !game.charging) startCharge();
  });

  window.addEventListener("keyup", function (event) {
    var key = keyOf(event);
    if (!key) return;
    event.preventDefault();
    if (key !== "fire") game.keys.delete(key);
    else fire();
  });

  window.addEventListener("blur", function () {
    game.keys.clear();
    game.pointer = null;
    cancelCharge();
  });

  // Drawing: the camera follows this page's ball; a map of the whole world in a corner.

  function resize() {
    var dpr = Math.min(window.devicePixelRatio || 1, 3);
    view.w = canvas.clientWidth;
    view.h = canvas.clientHeight;
    view.dpr = dpr;
    view.inset = Math.min(Math.round($("stats").getBoundingClientRect().bottom), view.h / 3);
    view.tail = Math.min($("help").offsetHeight, view.h / 6);
    canvas.width = Math.max(1, Math.round(view.w * dpr));
    canvas.height = Math.max(1, Math.round(view.h * dpr));
  }

  // The view's left (or top) edge in the world: the target in the middle of what the HUD
  // leaves in sight (it covers ``inset`` at the start of the axis, ``tail`` at its end), and
  // the world's edges not hidden under the HUD.
  function cameraAxis(target, size, inset, tail) {
    var seen = size - inset - tail;
    if (seen >= WORLD) return -inset - (seen - WORLD) / 2; // all of it fits: centred
    return clamp(target - inset - seen / 2, -inset, WORLD - size + tail);
  }

  // A player's colour, from their Rid: any hue but the blues of this page's own ball.
  function hue(text) {
    var h = 0;
    for (var i = 0; i < text.length; i += 1) h = (h * 31 + text.charCodeAt(i)) % 300;
    return h < 190 ? h : h + 60;
  }

  function drawGrid(left, top) {
    ctx.fillStyle = "#17203a";
    ctx.fillRect(0, 0, WORLD, WORLD);
    ctx.strokeStyle = "rgba(255, 255, 255, .06)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    var step = 80; // the lines in sight only
    var right = Math.min(WORLD, left + view.w + step);
    var bottom = Math.min(WORLD, top + view.h + step);
    for (var x = Math.max(step, Math.ceil(left / step) * step); x < right; x += step) {
      ctx.moveTo(x + 0.5, 0);
      ctx.lineTo(x + 0.5, WORLD);
    }
    for (var y = Math.max(step, Math.ceil(top / step) * step); y < bottom; y += step) {
      ctx.moveTo(0, y + 0.5);
      ctx.lineTo(WORLD, y + 0.5);
    }
    ctx.stroke();
    ctx.strokeStyle = "#5b8cff";
    ctx.lineWidth = 3;
    ctx.strokeRect(-1.5, -1.5, WORLD + 3, WORLD + 3);
  }

  function visible(x, y, margin, left, top) {
    return x > left - margin && x < left + view.w + margin &&
      y > top - margin && y < top + view.h + margin;
  }

  function drawCoin(coin) {
    ctx.beginPath();
    ctx.arc(coin.x, coin.y, COIN_RADIUS, 0, 2 * Math.PI);
    ctx.fillStyle = "#f5c542";
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#b8860b";
    ctx.stroke();
  }

  function drawPlayer(p, mine) {
    var color = mine ? "#5b8cff" : "hsl(" + hue(p.rid) + ", 65%, 55%)";
    var length = RADIUS + 16 + (mine && game.charging ? (game.power - MIN_POWER) / 4 : 0);
    var a = p.angle * DEG;
    var tipX = p.x + Math.cos(a) * length;
    var tipY = p.y + Math.sin(a) * length;
    ctx.strokeStyle = mine && game.charging ? "#f0a530" : "rgba(255, 255, 255, .8)";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.moveTo(p.x + Math.cos(a) * RADIUS, p.y + Math.sin(a) * RADIUS);
    ctx.lineTo(tipX, tipY);
    ctx.stroke();
    ctx.beginPath();
    ctx.moveTo(tipX + Math.cos(a) * 6, tipY + Math.sin(a) * 6);
    ctx.lineTo(tipX + Math.cos(a + 2.4) * 8, tipY + Math.sin(a + 2.4) * 8);
    ctx.lineTo(tipX + Math.cos(a - 2.4) * 8, tipY + Math.sin(a - 2.4) * 8);
    ctx.closePath();
    ctx.fill();
    ctx.beginPath();
    ctx.arc(p.x, p.y, RADIUS, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = mine ? 3 : 2;
    ctx.strokeStyle = mine ? "#fff" : "rgba(0, 0, 0, .35)";
    ctx.stroke();
    // The name, outlined so that it reads over an arrow.
    var name = mine ? "you" : p.rid;
    ctx.font = (mine ? "600 " : "") + "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.lineWidth = 3;
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#101622";
    ctx.strokeText(name, p.x, p.y + RADIUS + 14);
    ctx.fillStyle = "#e8edf5";
    ctx.fillText(name, p.x, p.y + RADIUS + 14);
  }

  // A player out of sight: a mark on the edge of the view, pointing their way.
  function drawPointer(p, left, top) {
    var cx = left + view.w / 2;
    var cy = top + view.h / 2;
    var a = Math.atan2(p.y - cy, p.x - cx);
    var margin = 14;
    var x = clamp(p.x, left + margin, left + view.w - margin);
    var y = clamp(p.y, top + view.inset + margin, top + view.h - view.tail - margin); // off the HUD
    ctx.fillStyle = "hsl(" + hue(p.rid) + ", 65%, 55%)";
    ctx.beginPath();
    ctx.moveTo(x + Math.cos(a) * 10, y + Math.sin(a) * 10);
    ctx.lineTo(x + Math.cos(a + 2.5) * 8, y + Math.sin(a + 2.5) * 8);
    ctx.lineTo(x + Math.cos(a - 2.5) * 8, y + Math.sin(a - 2.5) * 8);
    ctx.closePath();
    ctx.fill();
  }

  function drawMap(left, top) {
    var size = Math.round(clamp(Math.min(view.w, view.h) * 0.28, 70, 150));
    var x0 = view.w - size - 10;
    var y0 = view.h - size - view.tail - 4;
    var k = size / WORLD;
    ctx.fillStyle = "rgba(16, 22, 34, .75)";
    ctx.fillRect(x0, y0, size, size);
    ctx.strokeStyle = "rgba(255, 255, 255, .35)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x0 + 0.5, y0 + 0.5, size - 1, size - 1);
    ctx.fillStyle = "#f5c542";
    game.coins.forEach(function (coin) {
      ctx.fillRect(x0 + coin.x * k - 1, y0 + coin.y * k - 1, 2, 2);
    });
    game.players.forEach(function (p, rid) {
      var mine = rid === game.rid;
      ctx.fillStyle = mine ? "#fff" : "hsl(" + hue(rid) + ", 65%, 60%)";
      ctx.beginPath();
      ctx.arc(x0 + p.x * k, y0 + p.y * k, mine ? 3.5 : 2.5, 0, 2 * Math.PI);
      ctx.fill();
    });
    ctx.strokeStyle = "rgba(91, 140, 255, .8)";
    ctx.strokeRect(x0 + Math.max(0, left) * k, y0 + Math.max(0, top) * k,
      Math.min(view.w, WORLD) * k, Math.min(view.h, WORLD) * k);
  }

  function draw() {
    ctx.setTransform(view.dpr, 0, 0, view.dpr, 0, 0);
    ctx.fillStyle = "#101622";
    ctx.fillRect(0, 0, view.w, view.h);
    var me = own();
    var left = cameraAxis(me ? me.x : WORLD / 2, view.w, 0, 0);
    var top = cameraAxis(me ? me.y : WORLD / 2, view.h, view.inset, view.tail);
    ctx.save();
    ctx.translate(-left, -top);
    drawGrid(left, top);
    game.coins.forEach(function (coin) {
      if (visible(coin.x, coin.y, COIN_RADIUS, left, top)) drawCoin(coin);
    });
    var pointers = 0;
    game.players.forEach(function (p, rid) {
      if (rid === game.rid) return;
      if (visible(p.x, p.y, RADIUS + 45, left, top)) drawPlayer(p, false);
      var inSight = p.x >= left && p.x <= left + view.w && p.y >= top + view.inset &&
        p.y <= top + view.h - view.tail;
      if (!inSight && pointers < 32) {
        pointers += 1;
        drawPointer(p, left, top);
      }
    });
    if (me) drawPlayer(me, true);
    ctx.restore();
    drawMap(left, top);
  }

  var hud = { players: $("players"), coins: $("coins"), eaten: $("eaten"), power: $("power"),
    bar: $("power-bar") };

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function drawHud() {
    setText(hud.players, String(game.players.size));
    setText(hud.coins, String(game.coins.size));
    setText(hud.eaten, String(game.eaten));
    var power = Math.round(game.power);
    setText(hud.power, String(power));
    if (hud.bar.value !== power - MIN_POWER) hud.bar.value = power - MIN_POWER;
  }

  var last = null;
  var spare = 0; // ms not yet simulated

  function frame(now) {
    if (last !== null) {
      spare = Math.min(spare + now - last, MAX_CATCH_UP * FRAME_MS);
      while (spare >= FRAME_MS) {
        simulate(now);
        spare -= FRAME_MS;
      }
    }
    last = now;
    sendMove(now);
    if (canvas.clientWidth !== view.w || canvas.clientHeight !== view.h) resize();
    draw();
    drawHud();
    requestAnimationFrame(frame);
  }

  // Connecting

  function connect() {
    if (WS_PROBLEM) {
      setStatus("offline", "not connected");
      showProblem(WS_PROBLEM, true);
      return;
    }
    setStatus("connecting", "connecting…");
    mqant.init({
      mqttVersion: MQTT_VERSION,
      port: WS === "listener" ? config.wsPort : undefined, // ws[s]://<this host>:<port>/mqtt
      onSuccess: function () { join(); },
      onFailure: function () { setStatus("reconnecting", "cannot reach the server"); },
      onConnectionLost: function () {
        clearTimeout(game.joinTimer);
        game.joinSeq += 1;
        game.joined = false;
        game.keys.clear();
        cancelCharge();
        setStatus("reconnecting", "connection lost");
      },
      onReconnecting: function (delay) {
        setStatus("reconnecting", "reconnecting in " + Math.ceil(delay / 1000) + " s…");
      },
    });
  }

  window.addEventListener("online", function () { mqant.retryNow(); });

  // A copy of what the page knows (changing it changes nothing).
  function snapshot() {
    var players = {};
    game.players.forEach(function (p, rid) {
      players[rid] = { x: p.x, y: p.y, xSpeed: p.xSpeed, ySpeed: p.ySpeed, angle: p.angle,
        power: p.power };
    });
    return {
      status: game.status,
      statusText: game.statusText,
      problem: game.problem,
      rid: game.rid,
      joined: game.joined,
      players: players,
      coins: Array.from(game.coins.values(), function (c) { return { id: c.id, x: c.x, y: c.y }; }),
      eaten: game.eaten,
      lastEaten: game.lastEaten,
      ignored: game.ignored,
      charging: game.charging,
      power: game.power,
      sent: Object.assign({}, game.sent),
      lastFire: game.lastFire && Object.assign({}, game.lastFire),
      view: { w: view.w, h: view.h, inset: view.inset, tail: view.tail },
    };
  }

  window.hitball = Object.freeze({ state: snapshot });

  resize();
  window.addEventListener("resize", resize);
  setStatus("offline");
  connect();
  requestAnimationFrame(frame);
})();
