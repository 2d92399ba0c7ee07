#include "purposes.h"
#include "forksafe.h"
#include "model.h"
#include "process.h"
#include "table.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>

/* initial-exec: the shim is preloaded, and this is read on every allocation. */
__thread struct vg_purpose_stack vg_purpose_tls __attribute__((tls_model("initial-exec")));
#define stack vg_purpose_tls.frames
#define depth vg_purpose_tls.depth

static char label_text[VG_LABEL_POOL][VG_LABEL_MAX];
static atomic_int label_count = 1; /* slot 0 = no label */
static pthread_mutex_t label_lock = PTHREAD_MUTEX_INITIALIZER;

pthread_mutex_t *vg_labels_fork_mutex(void)
{
    return &label_lock;
}

/* The hot path reads the top frame packed (process.h: purpose_meta). */
static void top_changed(void)
{
    uint8_t purpose;
    uint16_t label;
    vg_purpose_current(&purpose, &label);
    vg_tls_call.purpose_meta = vg_table_purpose_meta(purpose, label);
}

int vg_purpose_push(int purpose, const char *label)
{
    bool valid = purpose >= 0 && purpose < VG_PURPOSE_COUNT;
    if (depth < VG_PURPOSE_STACK_DEPTH) {
        stack[depth].purpose = valid ? (uint8_t)purpose : VG_PURPOSE_UNKNOWN;
        stack[depth].label = vg_label_intern(label);
    }
    ++depth;
    top_changed();
    return valid ? depth : -1;
}

int vg_purpose_pop(void)
{
    if (depth > 0)
        depth--;
    top_changed();
    return depth;
}


uint16_t vg_label_intern(const char *label)
{
    if (label == NULL || label[0] == '\0')
        return 0;
    char key[VG_LABEL_MAX];
    strncpy(key, label, VG_LABEL_MAX - 1);
    key[VG_LABEL_MAX - 1] = '\0';
    /* Cut at a UTF-8 character boundary: if the character at the limit
     * continues past it, drop its bytes that did fit. */
    size_t len = strlen(key);
    if (len == VG_LABEL_MAX - 1 && ((unsigned char)label[len] & 0xC0) == 0x80) {
        size_t cut = len;
        while (cut > 0 && ((unsigned char)key[cut - 1] & 0xC0) == 0x80)
            cut--;
        if (cut > 0 && (unsigned char)key[cut - 1] >= 0xC0)
            cut--;
        key[cut] = '\0';
    }
    pthread_mutex_lock(&label_lock);
    int n = atomic_load(&label_count);
    uint16_t found = 0;
    for (int i = 1; i < n && !found; i++)
        if (strcmp(label_text[i], key) == 0)
            found = (uint16_t)i;
    if (!found) {
        if (n < VG_LABEL_POOL - 1) {
            memcpy(label_text[n], key, sizeof(key));
            atomic_store(&label_count, n + 1);
            found = (uint16_t)n;
        } else {
            strcpy(label_text[VG_LABEL_POOL - 1], "(other labels)");
            found = VG_LABEL_POOL - 1;
        }
    }
    pthread_mutex_unlock(&label_lock);
    return found;
}

const char *vg_label_text(uint16_t index)
{
    if (index == 0 || index >= VG_LABEL_POOL)
        return NULL;
    return label_text[index];
}

int vg_label_count(void)
{
    return atomic_load(&label_count);
}
