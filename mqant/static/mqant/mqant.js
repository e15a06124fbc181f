/*
 * mqant.js: mqant's browser API (mqantlib.js) over MQTT.js, so mqant-style pages port over.
 *
 *   mqant.init({onSuccess, onConnectionLost, ...})      connect (again after a drop, with backoff)
 *   mqant.request("Chat/HD_Say", {...}, function (message) {
 *       var reply = JSON.parse(message.payloadString);  // {"Trace", "Error", "Result"}
 *   });
 *   mqant.requestNR("Chat/HD_Say", {...});              // no msgid: nothing is replied
 *   mqant.on("Chat/OnChat", function (message) { ... }); // pushes, matched by exact topic
 *
 * A request publishes at QoS 1 on "<topic>/<msgid>" (msgid: a counter) and its callback gets
 * the PUBLISH the server sends back on exactly that topic, once. Messages look like Paho's:
 * destinationName, payloadString, payloadBytes. Objects are sent as JSON, strings and
 * Uint8Arrays as they are.
 *
 * Unlike mqantlib.js, a request never waits forever: when the connection is down, drops or the
 * reply takes longer than `timeout`, its callback gets an envelope of this library's own,
 * {"Trace": "", "Error": "not connected" | "connection lost" | "timeout", "Result": null}.
 * Requests are not queued while offline: after a reconnect the page logs in again first.
 */
(function (global) {
  "use strict";

  var encoder = new TextEncoder();
  var decoder = new TextDecoder();

  function Message(topic, bytes) {
    this.destinationName = topic;
    this.payloadBytes = bytes;
  }
  Object.defineProperty(Message.prototype, "payloadString", {
    get: function () { return decoder.decode(this.payloadBytes); },
  });

  function localError(topic, error) {
    var body = JSON.stringify({ Trace: "", Error: error, Result: null });
    return new Message(topic, encoder.encode(body));
  }

  function encode(msg) {
    if (msg instanceof Uint8Array) return msg;
    return typeof msg === "string" ? msg : JSON.stringify(msg);
  }

  function defaultUrl(prop) {
    var secure = prop.useSSL !== undefined ? prop.useSSL : global.location.protocol === "https:";
    var host = prop.host || global.location.hostname;
    var port = prop.port || global.location.port;
    var path = prop.path || "/mqtt";
    // An IPv6 address: location.hostname has its brackets already, prop.host may not.
    if (host.indexOf(":") >= 0 && host.charAt(0) !== "[") host = "[" + host + "]";
    return (secure ? "wss://" : "ws://") + host + (port ? ":" + port : "") + path;
  }

  function Mqant() {
    this.curr_id = 0;
    this.client = null;
    this.waiting = new Map(); // topic -> {callback, timer}
    this.listeners = new Map(); // push topic -> callback
    this.attempt = 0;
    this.retryTimer = null;
    this.everConnected = false;
  }

  /*
   * prop: url (default ws[s]://<this host>/mqtt) or host, port, useSSL, path; client_id;
   * userName and password (CONNECT credentials, optional);
   * mqttVersion 3 (MQTT 3.1, subprotocol mqttv3.1) or 4 (3.1.1, the default); keepalive (s,
   * 30); timeout (ms a request waits, 15000); reconnect (true); minDelay, maxDelay (ms, 1000
   * and 30000: the delay doubles from one to the other, with jitter).
   * Callbacks: onSuccess({reconnect}) after every CONNACK (log in again there);
   * onConnectionLost(error) when an open connection drops; onFailure(error) when an attempt
   * fails; onReconnecting(delayMs, attempt) when the next attempt is scheduled.
   */
  Mqant.prototype.init = function (prop) {
    var self = this;
    self.prop = prop = prop || {};
    self.destroy();
    self.stopped = false;
    var v3 = prop.mqttVersion === 3;
    var client = global.mqtt.connect(prop.url || defaultUrl(prop), {
      clientId: prop.client_id || "mqantjs_" + Math.random().toString(16).slice(2, 10),
      protocolId: v3 ? "MQIsdp" : "MQTT",
      protocolVersion: v3 ? 3 : 4,
      clean: true,
      username: prop.userName, // optional CONNECT credentials, as with Paho's connect()
      password: prop.password,
      keepalive: prop.keepalive || 30,
      connectTimeout: 10000,
      reconnectPeriod: 0, // reconnects are scheduled here, with backoff
    });
    self.client = client;
    function current(handler) { // a destroyed client's events are ignored
      return function () { if (self.client === client) handler.apply(self, arguments); };
    }
    client.on("connect", current(function () {
      var reconnect = self.everConnected;
      self.everConnected = self.wasConnected = true;
      self.attempt = 0;
      if (prop.onSuccess) prop.onSuccess({ reconnect: reconnect });
    }));
    client.on("message", current(self._dispatch));
    client.on("error", function (error) { self.lastError = error; });
    client.on("close", current(self._closed));
    return true;
  };

  Mqant.prototype._closed = function () {
    var prop = this.prop;
    var error = this.lastError || new Error("connection closed");
    this.lastError = null;
    this._failAll("connection lost");
    if (this.wasConnected) {
      this.wasConnected = false;
      if (prop.onConnectionLost) prop.onConnectionLost(error);
    } else if (prop.onFailure) {
      prop.onFailure(error);
    }
    if (!this.stopped && prop.reconnect !== false && !this.retryTimer) this._scheduleRetry();
  };

  Mqant.prototype._scheduleRetry = function () {
    var self = this;
    var min = self.prop.minDelay || 1000;
    var max = self.prop.maxDelay || 30000;
    var delay = Math.min(max, min * Math.pow(2, self.attempt));
    delay = Math.round(delay / 2 + Math.random() * delay / 2);
    self.attempt += 1;
    if (self.prop.onReconnecting) self.prop.onReconnecting(delay, self.attempt);
    self.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      if (!self.stopped && self.client) self.client.reconnect();
    }, delay);
  };

  /* Try now rather than at the scheduled time (e.g. when the browser comes back online). */
  Mqant.prototype.retryNow = function () {
    if (!this.retryTimer || this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.client.reconnect();
  };

  Mqant.prototype._dispatch = function (topic, payload) {
    var message = new Message(topic, new Uint8Array(payload));
    var pending = this.waiting.get(topic);
    if (pending) {
      this.waiting.delete(topic);
      clearTimeout(pending.timer);
      pending.callback(message);
      return;
    }
    var listener = this.listeners.get(topic);
    if (listener) listener(message);
  };

  Mqant.prototype._failAll = function (error) {
    var waiting = this.waiting;
    this.waiting = new Map();
    waiting.forEach(function (pending, topic) {
      clearTimeout(pending.timer);
      pending.callback(localError(topic, error));
    });
  };

  Mqant.prototype.connected = function () {
    return Boolean(this.client && this.client.connected);
  };

  /* Publish msg on "<topic>/<msgid>"; callback(message) gets the reply on that same topic. */
  Mqant.prototype.request = function (topic, msg, callback) {
    var self = this;
    self.curr_id += 1;
    var full = topic + "/" + self.curr_id;
    if (!self.connected()) {
      setTimeout(function () { callback(localError(full, "not connected")); }, 0);
      return full;
    }
    var timer = setTimeout(function () {
      if (self.waiting.delete(full)) callback(localError(full, "timeout"));
    }, self.prop.timeout || 15000);
    self.waiting.set(full, { callback: callback, timer: timer });
    self.client.publish(full, encode(msg), { qos: 1 });
    return full;
  };

  /* Publish msg on topic without a msgid: the server replies nothing, errors included. */
  Mqant.prototype.requestNR = function (topic, msg) {
    if (!this.connected()) return false;
    this.client.publish(topic, encode(msg), { qos: 1 });
    return true;
  };

  /* callback(message) for every PUBLISH on exactly this topic (mqant's pushes: no SUBSCRIBE). */
  Mqant.prototype.on = function (topic, callback) {
    this.listeners.set(topic, callback);
  };

  Mqant.prototype.off = function (topic) {
    this.listeners.delete(topic);
  };

  /* Disconnect for good: no reconnect; pending requests get "connection lost". */
  Mqant.prototype.destroy = function () {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.everConnected = this.wasConnected = false;
    var client = this.client;
    this.client = null;
    if (client) client.end(true);
    this._failAll("connection lost");
  };

  global.Mqant = Mqant;
  global.mqant = new Mqant();
})(window);
