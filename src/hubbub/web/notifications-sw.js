// The notification page's service worker: shows Web Push messages from the hub while
// no page of it is open (the payload is the JSON of docs/notifications.md).
self.addEventListener("push", (event) => {
  let message = { title: "Hubbub", body: "" };
  try {
    message = event.data ? event.data.json() : message;
  } catch {
    message = { title: "Hubbub", body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(
    self.registration.showNotification(message.title || "Hubbub", {
      body: message.body || "",
      tag: message.id ? `hubbub-${message.id}` : undefined,
      requireInteraction: message.priority === "critical",
      data: message,
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients.matchAll({ type: "window" }).then((windows) => {
      const open = windows.find((w) => new URL(w.url).pathname === "/demo/notifications");
      return open ? open.focus() : self.clients.openWindow("/demo/notifications");
    }),
  );
});
