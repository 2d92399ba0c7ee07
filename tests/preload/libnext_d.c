__attribute__((visibility("default"))) int vg_local_only(void);
int vg_local_only(void)
{
    return 42;
}
