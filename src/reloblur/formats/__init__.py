"""The records on disk that connect the stages: the capture session (capture -> align),
the ReLoBlur dataset layout, mask and align sidecars, the rig's timing conventions and the
sync-box protocol table. Each kind of file is read and written here, in one place."""
