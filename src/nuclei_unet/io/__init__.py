"""Reading and writing what the pipeline exchanges: files, images, the DSB layout, tables."""
