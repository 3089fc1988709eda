include $(sort $(wildcard $(BR2_EXTERNAL_OVERLAY_INIT_PATH)/package/*/*.mk))
