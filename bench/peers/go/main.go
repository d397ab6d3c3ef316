// The benchmark protocol on Go's gorilla/websocket: go run . [PORT]
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/websocket"
)

type client struct {
	conn *websocket.Conn
	send chan []byte
}

var (
	mu       sync.Mutex
	members  = map[*client]bool{}
	upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: func(*http.Request) bool { return true }}
)

func (c *client) writer() {
	for msg := range c.send {
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{conn: conn, send: make(chan []byte, 4096)}
	go c.writer()
	defer func() {
		mu.Lock()
		delete(members, c)
		mu.Unlock()
		close(c.send)
		conn.Close()
	}()
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var frame struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
			ID   *uint64         `json:"id"`
		}
		if json.Unmarshal(raw, &frame) != nil {
			return
		}
		switch frame.Type {
		case "join":
			mu.Lock()
			members[c] = true
			mu.Unlock()
		case "publish":
			out := []byte(`{"type":"publish","data":` + string(frame.Data) + `}`)
			mu.Lock()
			for m := range members {
				select {
				case m.send <- out:
				default:
				}
			}
			mu.Unlock()
		case "echo":
			id := uint64(0)
			if frame.ID != nil {
				id = *frame.ID
			}
			c.send <- []byte(fmt.Sprintf(`{"type":"$reply","id":%d,"data":%s}`, id, frame.Data))
		}
	}
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		panic(err)
	}
	fmt.Printf("listening on http://%s\n", listener.Addr())
	http.HandleFunc("/ws", serve)
	panic(http.Serve(listener, nil))
}
