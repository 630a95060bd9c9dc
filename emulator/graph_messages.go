package emulator

import (
	"encoding/json"
	"net/http"
)

var messageFields = []string{"id", "title", "category", "severity", "isMajorChange", "tags", "services", "startDateTime",
	"endDateTime", "lastModifiedDateTime", "actionRequiredByDateTime", "hasAttachments"}

// messageReaderRoles are the Microsoft 365 roles Graph lets read Message Center posts.
var messageReaderRoles = []string{"Message Center Reader", "Global Administrator", "Global Reader", "Service Support Administrator"}

// messageAccess applies Graph's two checks: the ServiceMessage.Read.All permission, and for
// delegated calls a Microsoft 365 role of the user.
func (em *Emulator) messageAccess(c *graphCaller) *graphError {
	if !c.hasAny([]string{"ServiceMessage.Read.All"}, []string{"ServiceMessage.Read.All"}) {
		return errInsufficient
	}
	if c.user != nil && !c.user.hasDirectoryRole(messageReaderRoles...) {
		return gerr(http.StatusForbidden, "Authorization_RequestDenied", "The signed-in user does not hold a role that can read Message Center posts (such as Message Center Reader).")
	}
	return nil
}

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

func (em *Emulator) graphMessages(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := em.messageAccess(c); ge != nil {
		return ge
	}
	items := make([]map[string]any, 0, len(em.dir.messages))
	for _, m := range em.dir.messages {
		items = append(items, toMap(m))
	}
	q := r.URL.Query()
	items, ge := filterObjects(items, q.Get("$filter"), messageFields)
	if ge != nil {
		return ge
	}
	if ge := sortObjects(items, q.Get("$orderby"), messageFields); ge != nil {
		return ge
	}
	return em.writePage(w, r, items, 100, 100, "admin/serviceAnnouncement/messages")
}

func (em *Emulator) graphMessage(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := em.messageAccess(c); ge != nil {
		return ge
	}
	for _, m := range em.dir.messages {
		if m.ID == r.PathValue("id") {
			return writeEntity(w, r, em.GraphURL()+"/v1.0/$metadata#admin/serviceAnnouncement/messages/$entity", toMap(m))
		}
	}
	return gerr(http.StatusNotFound, "NotFound", "The message '"+truncate(r.PathValue("id"), 40)+"' was not found.")
}
