// What the MQTT 5.0 browser tests do with MQTT.js (the global `mqtt` of dist/mqtt.min.js,
// loaded before this file): one client per page, every packet a user's code sees recorded in
// plain data that Playwright can return. Every promise here settles within its own timeout.
"use strict";

const hex = (bytes) => Array.from(bytes || [], (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => new Uint8Array((text.match(/../g) || []).map((b) => parseInt(b, 16)));

// Properties as JSON can carry them: binary ones (Correlation Data) as hex.
function plain(properties) {
  const out = {};
  for (const [name, value] of Object.entries(properties || {})) {
    out[name] = value instanceof Uint8Array ? hex(value) : value;
  }
  return out;
}

function within(ms, what, executor) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Expected ${what} within ${ms} ms, got nothing`)), ms);
    executor(
      (value) => { clearTimeout(timer); resolve(value); },
      (error) => { clearTimeout(timer); reject(error); },
    );
  });
}

window.mqttTest = {
  client: null,
  messages: [], // {topic, payload (text), properties}
  disconnects: [], // the server's DISCONNECT packets: {reasonCode, properties}
  pubacks: [], // {messageId, reasonCode, properties}
  closes: 0,
  errors: [],

  // Connect with MQTT 5.0, never reconnecting; the CONNACK's reason code and properties.
  connect(url, options, ms) {
    return within(ms, "a CONNACK", (resolve, reject) => {
      const client = mqtt.connect(url, {
        protocolVersion: 5, reconnectPeriod: 0, connectTimeout: ms, ...options,
      });
      this.client = client;
      client.on("connect", (connack) => resolve({ reasonCode: connack.reasonCode, properties: plain(connack.properties) }));
      client.on("error", (error) => {
        this.errors.push(`${error.message} (code ${error.code})`);
        reject(error);
      });
      client.on("message", (topic, payload, packet) => this.messages.push({
        topic, payload: new TextDecoder().decode(payload), properties: plain(packet.properties),
      }));
      client.on("disconnect", (packet) => this.disconnects.push({
        reasonCode: packet.reasonCode, properties: plain(packet.properties),
      }));
      client.on("close", () => {
        this.closes += 1;
        reject(new Error("Expected a CONNACK, got the connection's end")); // after one: no-op
      });
      client.on("packetreceive", (packet) => {
        if (packet.cmd === "puback") {
          this.pubacks.push({ messageId: packet.messageId, reasonCode: packet.reasonCode, properties: plain(packet.properties) });
        }
      });
    });
  },

  // PUBLISH; once MQTT.js calls back: the error it made of a failure reason code (null if
  // none) and the PUBACK (null at QoS 0) as it came, with its reason code and properties.
  publish(topic, payload, { qos = 1, retain = false, responseTopic, correlation } = {}, ms) {
    const properties = {};
    if (responseTopic !== undefined) properties.responseTopic = responseTopic;
    if (correlation !== undefined) properties.correlationData = unhex(correlation);
    return within(ms, `the PUBACK on ${topic}`, (resolve) => {
      // MQTT.js keeps a PUBLISH it has not seen acked for the next connection: a close first
      // ends the wait here.
      const closed = () => resolve({ error: "closed", puback: null });
      this.client.once("close", closed);
      this.client.publish(topic, payload, { qos, retain, properties }, (error, packet) => {
        this.client.removeListener("close", closed);
        resolve({
          error: error ? error.message : null,
          puback: (qos > 0 && this.pubacks.find((ack) => ack.messageId === packet.messageId)) || null,
        });
      });
    });
  },

  subscribe(topic, ms) {
    return within(ms, `the SUBACK of ${topic}`, (resolve, reject) => {
      this.client.subscribe(topic, { qos: 1 }, (error, granted) => (error ? reject(error) : resolve(granted)));
    });
  },

  // The first PUBLISH on `topic` with that Correlation Data (hex), received or to come.
  reply(topic, correlation, ms) {
    const wanted = (m) => m.topic === topic && m.properties.correlationData === correlation;
    const end = Date.now() + ms;
    return within(ms, `a PUBLISH on ${topic}`, (resolve) => {
      const poll = () => {
        const found = this.messages.find(wanted);
        if (found) resolve(found);
        else if (Date.now() < end) setTimeout(poll, 20);
      };
      poll();
    });
  },
};
